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
    MIN_COUNTRY_CODE_DIGITS,
    MIN_DIGIT_RUN,
    MIN_DIGITS_TO_KEEP_LEADING,
    MIN_NATIONAL_DIGITS,
    mask_digit_runs,
    mask_number,
    mask_numbers_in_text,
)

__all__ = [
    "KEEP_LEADING_DIGITS",
    "KEEP_TRAILING_DIGITS",
    "MASK",
    "MIN_COUNTRY_CODE_DIGITS",
    "MIN_DIGITS_TO_KEEP_LEADING",
    "MIN_DIGIT_RUN",
    "MIN_NATIONAL_DIGITS",
    "mask_digit_runs",
    "mask_number",
    "mask_numbers_in_text",
]
