"""Keep caller numbers out of logs (Indonesia's UU PDP 27/2022).

Caller numbers are personal data. Events carry them to the call center; logs,
problem reports and exception texts must not. ``mask_number`` keeps just
enough to tell calls apart while debugging (``+6281*******90``), and
``mask_digit_runs`` does the same for every number-like run inside free text,
such as a raw modem line quoted in a warning.
"""

from __future__ import annotations

import re

KEEP_LEADING_DIGITS = 4
KEEP_TRAILING_DIGITS = 2
MASK = "*"

# Seven digits or more: phone numbers, IMEIs. Shorter runs (cause codes,
# signal levels, "112") say nothing about a person.
_DIGIT_RUN = re.compile(r"\+?\d{7,}")


def mask_number(number: str | None) -> str:
    """``+6281234567890`` -> ``+6281*******90``: first 4 and last 2 digits stay.

    Numbers too short to keep 4 + 2 digits and still hide some are masked
    completely; ``None`` or an empty number is shown as ``-``.
    """
    if not number:
        return "-"
    digit_count = sum(character.isdigit() for character in number)
    if digit_count <= KEEP_LEADING_DIGITS + KEEP_TRAILING_DIGITS:
        return "".join(MASK if character.isdigit() else character for character in number)
    masked: list[str] = []
    seen = 0
    for character in number:
        if character.isdigit():
            seen += 1
            hidden = KEEP_LEADING_DIGITS < seen <= digit_count - KEEP_TRAILING_DIGITS
            masked.append(MASK if hidden else character)
        else:
            masked.append(character)
    return "".join(masked)


def mask_digit_runs(text: str) -> str:
    """Mask every run of 7 or more digits in ``text`` with ``mask_number``."""
    return _DIGIT_RUN.sub(lambda match: mask_number(match.group()), text)
