"""Moved to ``gateway.privacy``: masking caller numbers is part of the gateway's contract.

Drivers import it from there (``drivers`` depend on ``gateway``, never the
reverse); this module stays so that code written against the old path keeps
working.
"""

from __future__ import annotations

from gateway.privacy import (
    KEEP_LEADING_DIGITS,
    KEEP_TRAILING_DIGITS,
    MASK,
    mask_digit_runs,
    mask_number,
)

__all__ = [
    "KEEP_LEADING_DIGITS",
    "KEEP_TRAILING_DIGITS",
    "MASK",
    "mask_digit_runs",
    "mask_number",
]
