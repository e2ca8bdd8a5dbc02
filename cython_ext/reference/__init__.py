"""Pure-Python reference implementations of the hot paths in ``cython_ext``."""
