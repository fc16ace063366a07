"""The admin plane: REST API, metrics and the facade they read (see context.py)."""
