"""``drivers.privacy``: which numbers free text loses, and which tokens stay readable.

The number strategies and ``leaked_digits`` are shared with ``tests/gateway/test_logs.py``,
which pushes the same numbers through the log formatter and the exception hooks.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.privacy import mask_digit_runs, mask_number, mask_numbers_in_text

LEAK_WINDOW = 6  # no 6 consecutive digits of a number may survive
SEPARATORS = (" ", "-", ".")
# Text around a number: letters, spaces and punctuation, never digits (a digit beside a
# number makes it a different number).
SURROUNDING_TEXT = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ .,;:!?'\"()[]<>=/_-+#\t"),
    max_size=20,
)
# A run of digits as it appears in output, separators and brackets between them allowed.
_DIGITS_IN_OUTPUT = re.compile(r"\d(?:[ .\-()]*\d)*")


def digit_strings(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=min_size, max_size=max_size)


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """``digits`` cut in up to 5 groups, a random separator at each cut."""
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=4)))
    bounds = zip([0, *cuts], [*cuts, len(digits)], strict=True)
    groups = [digits[start:end] for start, end in bounds]
    text = groups[0]
    for group in groups[1:]:
        text += draw(st.sampled_from(SEPARATORS)) + group
    return text


@st.composite
def e164_numbers(draw: st.DrawFn) -> str:
    """``+``, a country code, then digits: 8 to 15 digits in all, grouped at random."""
    country = draw(st.sampled_from(["62", "1", "44", "60", "65", "852", "7"]))
    rest = draw(digit_strings(8 - len(country), 15 - len(country)))
    if draw(st.booleans()) and len(rest) >= 8:  # "+62 (21) 555 1234"
        area, subscriber = rest[:2], rest[2:]
        return f"+{country} ({area}) {draw(grouped(subscriber))}"
    return "+" + draw(grouped(country + rest))


@st.composite
def national_numbers(draw: st.DrawFn) -> str:
    """Indonesian national: a mobile ``08...`` or an area code ``0541``/``021`` and subscriber."""
    if draw(st.booleans()):  # "0812 3456 7890", also "0 812 3456 7890"
        return (
            "0"
            + draw(st.sampled_from(["", " ", "-"]))
            + draw(grouped("8" + draw(digit_strings(8, 11))))
        )
    area = "0" + draw(st.sampled_from("23456789")) + draw(digit_strings(1, 2))
    subscriber = draw(digit_strings(9 - len(area), 14 - len(area)))
    if draw(st.booleans()):
        return f"({area}){draw(st.sampled_from(['', ' ']))}{draw(grouped(subscriber))}"
    return area + draw(st.sampled_from(SEPARATORS)) + draw(grouped(subscriber))


phone_numbers = st.one_of(e164_numbers(), national_numbers())


@st.composite
def numbers_in_text(draw: st.DrawFn) -> tuple[str, str]:
    """(number, a text holding it between random letters and punctuation)."""
    number = draw(phone_numbers)
    return number, draw(SURROUNDING_TEXT) + number + draw(SURROUNDING_TEXT)


def leaked_digits(number: str, output: str) -> list[str]:
    """The 6-digit stretches of ``number`` (separators removed) still readable in ``output``."""
    digits = re.sub(r"\D", "", number)
    windows = {digits[i : i + LEAK_WINDOW] for i in range(len(digits) - LEAK_WINDOW + 1)}
    runs = [re.sub(r"\D", "", run) for run in _DIGITS_IN_OUTPUT.findall(output)]
    return sorted(window for window in windows if any(window in run for run in runs))


# ------------------------------------------------------------------ the reviewer's examples


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call from +6281234567890.", "call from +6281*******90."),
        ("call from +62 812-3456-7890", "call from +62 81*-****-**90"),
        ("call from 0812 3456 7890", "call from 0812 **** **90"),
        ("call from 0812.3456.7890, twice", "call from 0812.****.**90, twice"),
        ("call from (0541) 123456", "call from (****) ****56"),
        ("call from (+62) 812 3456 7890", "call from (+62) 81* **** **90"),
        ("call from 62 812-3456-7890", "call from 62 81*-****-**90"),
        ("ICCID 89620012345678901234F", "ICCID 8962**************34F"),
        ("IMEI:356938035643809", "IMEI:3569*********09"),
        ("local 1234567", "local *****67"),
        ("file_6281234567890.wav", "file_6281*******90.wav"),
        (
            'MISSED_CALL: 11:08AM 6281234567890 and +CLIP: "+6281234567890",145,,,,0',
            'MISSED_CALL: 11:08AM 6281*******90 and +CLIP: "+6281*******90",145,,,,0',
        ),
        (
            "+6281234567890 at 2026-12-04T22:22:36Z on 127.0.0.1:1883",
            "+6281*******90 at 2026-12-04T22:22:36Z on 127.0.0.1:1883",
        ),
    ],
)
def test_numbers_in_text_are_masked(text, masked):
    assert mask_numbers_in_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-04T22:22:36.123Z",
        "2026-12-04T22:22:36.123456+07:00",
        "2026-12-04 22:22:36,123 INFO edge112.calls: ringing",
        "22:22:36",
        "22:22:36.123456789",
        "event_id=019ac8e2-5a1f-7c3e-9d2a-1b4c5d6e7f80",
        "call_id 12345678-1234-4234-8234-123456789012",
        "/var/lib/edge112/recordings/2026/12/04/"
        "gsm0-20261204T222236Z-019ac8e2-5a1f-7c3e-9d2a-1b4c5d6e7f80.wav",
        "/dev/serial/by-id/usb-Quectel_EG25-GC-if02-port0",
        "broker 127.0.0.1:1883, 192.168.100.254:8883",
        "region 64.74, village 64.72.05.1002",
        "seq=123456 retries=3 queued 999999",
        "took 1.5 s, timeout 0.25 s",
        "<object at 0x7f3a21234567>",
        "cause 16, +CSQ: 23,99, dial 112",
        "edge112 0.4.1",
    ],
)
def test_readable_tokens_are_left_alone(text):
    assert mask_numbers_in_text(text) == text


@given(numbers_in_text())
@settings(max_examples=300, deadline=None)
def test_no_six_digits_of_a_number_survive_in_text(case):
    number, text = case
    assert leaked_digits(number, mask_numbers_in_text(text)) == []


@given(numbers_in_text())
@settings(max_examples=50, deadline=None)
def test_masking_twice_changes_nothing_more(case):
    _, text = case
    once = mask_numbers_in_text(text)
    assert mask_numbers_in_text(once) == once


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+6281234567890", "+6281*******90"),
        ("081234567890", "0812******90"),
        ("+62 812-3456-7890", "+62 81*-****-**90"),
        ("0812345678", "********78"),
        ("1234567", "*****67"),
        ("123456", "******"),
        ("112", "***"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_number_shape_depends_on_length(number, masked):
    assert mask_number(number) == masked


def test_mask_digit_runs_is_the_same_function():
    text = "+CLIP: 0812 3456 7890 at 22:22:36 id 019ac8e2-5a1f-7c3e-9d2a-1b4c5d6e7f80"
    assert mask_digit_runs(text) == mask_numbers_in_text(text)
