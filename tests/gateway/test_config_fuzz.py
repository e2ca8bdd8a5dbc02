"""Any configuration file gives a Config or a ConfigError naming the problem, never a crash.

Random documents are built from the real section and key names (so they reach
every family's and the board's validators) with values of every TOML type,
plus random text; ``config check`` must then run on whatever parsed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, parse_config

SECTIONS = ["gateway", "mqtt", "outbox", "audio", "board", "modems", "spans", "bogus"]
KEYS = [
    "id", "region", "log_level", "url", "protocol", "username", "password_file", "ca_file",
    "keepalive_s", "inflight_window", "path", "synchronous", "max_mb", "held_max", "record",
    "recordings_dir", "quota_mb", "min_free_mb", "silent_prompt", "backend", "chip", "pins",
    "modems", "led_ready", "name", "port", "baudrate", "answer_after_rings", "liveness_s",
    "audio_port", "network_to_user", "user_to_network", "format", "bit_order", "crc4",
    "d_channel_timeslot", "speed", "b_channel_audio", "nonsense",
]  # fmt: skip
SCALARS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["gsm0", "64.74", "mqtt://127.0.0.1:1883", "e1", "auto", "/dev/null", ""]),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=8,
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + "}"
    return str(value)


def _document(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, table in sections.items():
        lines.append(f"[[{section}]]" if section in ("modems", "spans") else f"[{section}]")
        lines += [f'"{key}" = {_toml(value)}' for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _parses_or_names_the_problem(text: str) -> None:
    try:
        config = parse_config(text, "fuzz.toml")
    except ConfigError as error:
        assert str(error).startswith("fuzz.toml: "), error
        return
    from gateway.config_check import check_environment

    check_environment(config)  # and the machine checks run on whatever parsed


VALID_CORE = '[gateway]\nid = "bontang-01"\nregion = "64.74"\n'


@settings(max_examples=400, deadline=None)
@given(
    st.booleans(),
    st.dictionaries(
        st.sampled_from(SECTIONS), st.dictionaries(st.sampled_from(KEYS), VALUES), max_size=5
    ),
)
def test_any_document_of_known_names_parses_or_names_the_problem(
    with_valid_core: bool, sections: dict[str, dict[str, Any]]
) -> None:
    """With a valid [gateway] first (half the time), the documents reach the validators of
    every section and family instead of stopping at the missing gateway id."""
    if with_valid_core:
        sections.pop("gateway", None)
    _parses_or_names_the_problem((VALID_CORE if with_valid_core else "") + _document(sections))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_names_the_problem(text: str) -> None:
    _parses_or_names_the_problem(text)


def test_a_valid_core_with_random_extras_still_reports_file_and_key() -> None:
    text = '[gateway]\nid = "g"\nregion = "64.74"\n[[spans]]\nname = "e1a"\nformat = 7\n'
    try:
        parse_config(text, "site.toml")
    except ConfigError as error:
        assert error.key.startswith("spans[0]"), error
    else:
        raise AssertionError("a span without streams and with a numeric format was accepted")
