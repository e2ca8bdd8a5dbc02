"""The E1 family: ``[[spans]]`` validated into SpanSettings, each problem named by file and key;
a span built as a line driver by the registry, like a modem."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from drivers.e1.family import E1Family, SpanSettings
from drivers.e1.span import SpanDriver
from gateway.config import ConfigError, load_config, parse_config
from gateway.families import families, get_family
from gateway.lines import LineDriver

HEAD = '[gateway]\nid = "bontang-01"\nregion = "64.74"\n'
SPAN = '[[spans]]\nname = "e1a"\nnetwork_to_user = "tcp://tap:7001"\nuser_to_network = "tcp://tap:7002"\n'


def parse(extra: str = "", span: str = SPAN) -> Any:
    return parse_config(HEAD + span + extra, "site.toml")


def test_the_registry_names_e1_and_builds_span_drivers() -> None:
    assert families()["e1"].section == "spans"
    family = get_family("e1")
    assert isinstance(family, E1Family) and family.line_noun == "span"
    config = parse()
    (settings,) = config.lines
    assert isinstance(settings, SpanSettings) and config.lines_of("e1") == (settings,)
    driver = family.build_driver(settings, lambda event: None, None)
    assert isinstance(driver, SpanDriver)
    line_driver: LineDriver = driver  # the protocol the daemon needs (mypy checks it)
    assert line_driver.name == "e1a" and not line_driver.health().started


def test_defaults() -> None:
    (settings,) = parse().lines
    assert settings == SpanSettings(
        name="e1a", network_to_user="tcp://tap:7001", user_to_network="tcp://tap:7002"
    )
    assert (settings.format, settings.bit_order, settings.d_channel_timeslot) == (
        "e1",
        "msb-first",
        16,
    )
    assert settings.crc4 and settings.variant == "etsi" and settings.incoming_side == "network"
    assert not settings.b_channel_audio and not settings.wants_audio
    assert (settings.national_prefix, settings.speed, settings.baudrate) == ("0", 1.0, 115200)


def test_every_key() -> None:
    span = (
        '[[spans]]\nname = "e1b"\nnetwork_to_user = "unix:///run/e1/n2u"\n'
        'user_to_network = "/var/lib/edge112/u2n.e1"\nformat = "e1"\nbit_order = "lsb-first"\n'
        'd_channel_timeslot = 15\ncrc4 = false\nvariant = "itu-t"\nb_channel_audio = true\n'
        'incoming_side = "user"\nnational_prefix = ""\nspeed = 0\nbaudrate = 9600\n'
    )
    (settings,) = parse(span=span).lines
    assert settings.bit_order == "lsb-first" and settings.d_channel_timeslot == 15
    assert not settings.crc4 and settings.variant == "itu-t" and settings.wants_audio
    assert settings.incoming_side == "user" and settings.national_prefix == ""
    assert settings.speed == 0 and settings.baudrate == 9600


@pytest.mark.parametrize(
    ("span", "key", "problem"),
    [
        (
            '[[spans]]\nname = "e1a"\nuser_to_network = "/x"\n',
            "spans[0].network_to_user",
            "missing",
        ),
        (SPAN + 'formatt = "e1"\n', "spans[0].formatt", "unknown key"),
        (SPAN + 'format = "t1"\n', "spans[0].format", "one of 'e1', 'timeslot', 'lapd'"),
        (SPAN + 'bit_order = "msb"\n', "spans[0].bit_order", "msb-first"),
        (SPAN + "d_channel_timeslot = 0\n", "spans[0].d_channel_timeslot", "from 1 to 31"),
        (SPAN + "d_channel_timeslot = 32\n", "spans[0].d_channel_timeslot", "from 1 to 31"),
        (SPAN + "crc4 = 1\n", "spans[0].crc4", "true or false"),
        (SPAN + 'variant = "ansi"\n', "spans[0].variant", "'etsi', 'itu-t'"),
        (SPAN + 'incoming_side = "both"\n', "spans[0].incoming_side", "'network', 'user'"),
        (SPAN + 'national_prefix = "+"\n', "spans[0].national_prefix", "digits"),
        (SPAN + "speed = -1\n", "spans[0].speed", "from 0 to 1000"),
        (
            SPAN + 'format = "timeslot"\nb_channel_audio = true\n',
            "spans[0].b_channel_audio",
            "needs format = 'e1'",
        ),
        (
            '[[spans]]\nname = "e1a"\nnetwork_to_user = "gopher://x"\nuser_to_network = "/x"\n',
            "spans[0].network_to_user",
            "unknown scheme gopher://",
        ),
        (
            '[[spans]]\nname = "e1a"\nnetwork_to_user = "tcp://x"\nuser_to_network = "/x"\n',
            "spans[0].network_to_user",
            "tcp://HOST:PORT",
        ),
        (
            '[[spans]]\nname = "e1a"\nnetwork_to_user = "/x"\nuser_to_network = "/x"\n',
            "spans[0].user_to_network",
            "different streams",
        ),
        (SPAN + SPAN, "spans[1].name", "duplicate span name 'e1a'"),
        ('[[spans]]\nname = "e 1"\n', "spans[0].name", "letters, digits"),
    ],
)
def test_bad_entries_name_file_key_and_problem(span: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(span=span)
    error = caught.value
    assert (error.source, error.key) == ("site.toml", key)
    assert re.search(re.escape(problem), error.problem), error.problem
    assert str(error).startswith(f"site.toml: {key}: ")


def test_a_span_and_a_modem_may_not_share_a_name() -> None:
    modem = '[[modems]]\nname = "e1a"\nport = "/dev/ttyUSB0"\n'
    with pytest.raises(ConfigError) as caught:
        parse(span=modem + SPAN)
    assert caught.value.key == "spans[0].name"
    assert "duplicate span name 'e1a' (also modems[0].name)" in caught.value.problem


def test_spans_and_modems_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "edge112.toml"
    path.write_text(
        HEAD
        + '[[modems]]\nname = "gsm0"\nport = "/dev/ttyUSB0"\n'
        + SPAN
        + '[[modems]]\nname = "gsm1"\nport = "/dev/ttyUSB1"\n'
    )
    config = load_config(path)
    assert [line.name for line in config.lines_of("gsm")] == ["gsm0", "gsm1"]
    assert [line.name for line in config.lines_of("e1")] == ["e1a"]


def test_the_example_configuration_documents_spans() -> None:
    from gateway.config import EXAMPLE_CONFIG

    text = EXAMPLE_CONFIG.read_text()
    assert "# [[spans]]" in text
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and _in_span_example(text, line) else line
        for line in text.splitlines()
    )
    config = parse_config(uncommented, "example")
    (span,) = config.lines_of("e1")
    assert isinstance(span, SpanSettings)


def _in_span_example(text: str, line: str) -> bool:
    """Whether ``line`` belongs to the commented [[spans]] block of the example."""
    block = text[text.index("# [[spans]]") :].split("\n\n", 1)[0]
    return line in block.splitlines()
