"""api of the regional center (see center/__init__.py)."""
