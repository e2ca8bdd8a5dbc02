"""Board backends: one module per GPIO library, imported only when configured.

The table is ``firmware_py.board.BACKENDS``.
"""
