"""The chain-of-identity platform.

The package itself loads nothing: `coi.app.create_app` builds the Flask app, and the pure
core (`coi.core`, `coi.labels`) is importable without Flask, SQLAlchemy or SQLModel.
"""
