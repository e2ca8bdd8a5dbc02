"""Keep caller numbers out of logs (Indonesia's UU PDP 27/2022).

Caller numbers are personal data. Events carry them to the call center; logs,
problem reports and exception texts must not. Two functions, one shape:

* ``mask_number`` masks one number the code already holds (a caller id):
  ``+6281234567890`` -> ``+6281*******90``.
* ``mask_numbers_in_text`` finds and masks every number inside free text: a log
  line, a traceback, a raw modem line quoted in a warning. ``gateway.logs``
  runs it on every formatted log line and on uncaught exceptions.

What counts as a number in free text
------------------------------------
1. **E.164**: ``+``, a digit 1-9, then more digits, 8 or more digits in all
   (``+6281234567890``, ``+62 812-3456-7890``, ``+62 (21) 555 1234``).
2. **Indonesian national**: ``0``, a digit 1-9 (a space or ``-`` may come
   between them, never a ``.``: ``0.5`` is a fraction), then more digits, 9 or
   more digits in all, i.e. ``0`` and 8-13 more (``0812 3456 7890``,
   ``0541-123456``, ``(0541) 123456``). The ``0`` may not follow a digit.
3. **Country code without plus**: ``62``, a separator, then a mobile ``8...``
   (``62 812-3456-7890``), 10 or more digits in all. (``62812...`` unbroken is
   caught by rule 4.)
4. **Any run of 7 or more digits**, wherever it stands, also inside a word or a
   path: IMSI, IMEI and ICCID are personal identifiers too, and a local
   subscriber number dialled without its area code has 5-8 digits (those of
   7-8 are caught; shorter ones cannot be told from counts).

In 1-3 the digit groups may be joined by *one* separator: a space, ``-`` or
``.``, optionally with a parenthesis beside it (``(0541) 123456``,
``+62 (21) 555``). A number that grows past its usual length (more groups
follow it) is masked whole: too much masking beats a leak.

Left readable, because they are never numbers (they contain ``:``, ``T`` or
hex letters, or are too short):

* clock times and timestamps: ``22:22:36``, ``22:22:36.123456789``,
  ``2026-12-04T22:22:36.123Z``, ``2026-12-04 22:22:36,123`` (``asctime``),
  compact ones in recording names ``20261204T222236Z``;
* UUIDs (event and call ids), ``0x`` hex literals (addresses in reprs),
  IPv4 addresses with a port (``127.0.0.1:1883``; without one they are
  short digit groups anyway);
* anything with fewer than 7 digits in a row and no number shape: seq numbers
  and counts below a million, region codes (``64.74``), durations (``1.5 s``),
  cause codes, ``112``.

What is lost, on purpose: a bare date in compact form (``20261204``), byte
counts of a million or more and long zero-padded counters are masked like
any 7-digit run; a date or bare IP that directly follows a number after one
separator is masked with it.

The mask keeps just enough to tell calls apart: numbers of 11 or more digits
keep their first 4 and last 2 digits (``+6281*******90``, ``0812******90``),
7 to 10 digits keep only the last 2 (``(****) ****56``), 6 or fewer none.
Separators and ``+`` stay where they were.
"""

from __future__ import annotations

import re

KEEP_LEADING_DIGITS = 4
KEEP_TRAILING_DIGITS = 2
MIN_DIGITS_TO_KEEP_LEADING = 11  # 4 + 2 kept, at least 5 hidden
MIN_DIGIT_RUN = 7
MIN_E164_DIGITS = 8
MIN_NATIONAL_DIGITS = 9  # "0" and 8 more
MIN_COUNTRY_CODE_DIGITS = 10  # "62", "8" and 7 more
MASK = "*"

_HEX = "[0-9a-fA-F]"
_FRACTION = r"(?:[.,]\d{1,9})?"
# Tokens that look numeric but hold a ":", a "T" or hex letters, so no number grows into
# them: a number stops before one ("+6281234567890 22:22:36").
_NEVER_IN_A_NUMBER = (
    rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}(?!{_HEX})"  # UUID
    rf"|(?:\d{{4}}-\d{{2}}-\d{{2}}[T ])?\d{{1,2}}:\d{{2}}(?::\d{{2}}{_FRACTION})?"
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?(?!\d)"  # clock time, ISO date and time
    rf"|\d{{8}}T\d{{4,6}}{_FRACTION}Z?(?!\d)"  # compact ISO date and time
    r"|(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r":\d{1,5}(?!\d)"  # IPv4 and port
)
# Kept as they are where they start; a hex literal only there, since a number's last
# group "0" may be followed by any word ("... 789 0xff" is masked as "... 789 0" + "xff").
_READABLE = rf"{_NEVER_IN_A_NUMBER}|(?<![0-9a-zA-Z])0[xX][0-9a-fA-F]+"
# Between two digit groups: one of space - . with a parenthesis beside it, or a bare
# parenthesis ("(0541)123456").
_GROUP = rf"(?:\)?[ .\-]\(?|\)\(?|\()(?!{_NEVER_IN_A_NUMBER})\d+"
# Where a match may start; a cheap test that spares the alternatives below at most
# positions. A digit inside a run of digits never starts one: whatever could start
# there was already tried one position earlier. A UUID starts a word.
_MATCH_START = r"(?:(?<!\d)(?=\d)|(?=[(+])|(?<![0-9a-zA-Z])(?=[a-fA-F]))"
_NUMBER = re.compile(
    rf"{_MATCH_START}(?:"
    rf"(?P<readable>{_READABLE})"
    rf"|(?P<e164>\(?\+[1-9]\d*(?:{_GROUP})*)"
    rf"|(?P<national>(?<!\d)\(?0(?:[ \-](?!{_NEVER_IN_A_NUMBER}))?[1-9]\d*(?:{_GROUP})*)"
    rf"|(?P<country_code>(?<!\d)62(?=[ \-]\(?8)(?:{_GROUP})+)"
    rf"|(?P<run>\d{{{MIN_DIGIT_RUN},}})"
    r")"
)
# Every number above holds 7 digits joined by at most 3 of ( ) space - . in a row, so
# it lies inside a run of those characters and digits that holds 7 digits. Text without
# such a run (most log lines) is returned as it is, sparing the slower scan.
_MAYBE_NUMBER = re.compile(r"\d[\d .\-()]{6,}")
_WITHOUT_DIGITS = str.maketrans("", "", "0123456789")
_DIGIT_RUN = re.compile(rf"\d{{{MIN_DIGIT_RUN},}}")
_MIN_DIGITS = {
    "e164": MIN_E164_DIGITS,
    "national": MIN_NATIONAL_DIGITS,
    "country_code": MIN_COUNTRY_CODE_DIGITS,
    "run": MIN_DIGIT_RUN,
}


def mask_number(number: str | None) -> str:
    """``+6281234567890`` -> ``+6281*******90``; separators and ``+`` stay.

    11 or more digits keep their first 4 and last 2, 7 to 10 only their last 2,
    6 or fewer none; ``None`` or an empty number is shown as ``-``.
    """
    if not number:
        return "-"
    digit_count = sum(character.isdigit() for character in number)
    if digit_count >= MIN_DIGITS_TO_KEEP_LEADING:
        keep_leading, keep_trailing = KEEP_LEADING_DIGITS, KEEP_TRAILING_DIGITS
    elif digit_count >= MIN_DIGIT_RUN:
        keep_leading, keep_trailing = 0, KEEP_TRAILING_DIGITS
    else:
        keep_leading, keep_trailing = 0, 0
    masked: list[str] = []
    seen = 0
    for character in number:
        if character.isdigit():
            seen += 1
            hidden = keep_leading < seen <= digit_count - keep_trailing
            masked.append(MASK if hidden else character)
        else:
            masked.append(character)
    return "".join(masked)


def _mask_match(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "readable" or kind is None:
        return text
    if sum(character.isdigit() for character in text) >= _MIN_DIGITS[kind]:
        return mask_number(text)
    # Too short for its shape ("+1 2 3"), but it may still hold a long run.
    return _DIGIT_RUN.sub(lambda run: mask_number(run.group()), text)


def mask_numbers_in_text(text: str) -> str:
    """Mask every number in ``text`` (see the module docstring for what is one)."""
    if not any(
        len(run) - len(run.translate(_WITHOUT_DIGITS)) >= MIN_DIGIT_RUN
        for run in _MAYBE_NUMBER.findall(text)
    ):
        return text
    return _NUMBER.sub(_mask_match, text)


def mask_digit_runs(text: str) -> str:
    """The earlier name of :func:`mask_numbers_in_text`, kept for its callers."""
    return mask_numbers_in_text(text)
