"""Compiled hot paths (Cython) and their pure-Python references.

Each ``cython_ext/<name>.pyx`` has a ``.pyi`` stub beside it and a reference
implementation in ``cython_ext/reference/<name>.py`` that the tests compare
with bit for bit.
"""
