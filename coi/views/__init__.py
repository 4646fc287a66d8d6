"""Web UI views: parse input, call one service, render. Each declares its permission."""
