"""Domain operations: keyword-only (`session`, `now`, `actor`, ...), they flush but never
commit; the view, job or CLI command that called them owns the transaction."""
