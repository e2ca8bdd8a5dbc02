"""The family registry: lookup by name, lazy import, clear errors, families added at run time.

``LoopFamily`` below is a test-only family (``[[loops]]``) registered through
the public API, the way a site plug-in or the E1 family plugs in.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.audio.contract import AudioSinkFactory
from gateway.config import (
    LINE_NAME_CHECK,
    ConfigError,
    check_number,
    parse_config,
    validate_entry,
)
from gateway.daemon import Gateway
from gateway.families import (
    FamilyUnavailableError,
    LineFamily,
    UnknownFamilyError,
    families,
    family_sections,
    get_family,
    register_family,
    unregister_family,
)
from gateway.lines import Emit, LineDriver, LineHealth, LineSettings

MINIMAL = '[gateway]\nid = "bontang-01"\nregion = "64.74"\n'


@dataclass(frozen=True)
class LoopSettings(LineSettings):
    FAMILY: ClassVar[str] = "loop"
    channels: int = 1


class LoopDriver:
    """A driver that drives nothing: enough for the gateway to start, stop and ask health."""

    def __init__(self, settings: LoopSettings, emit: Emit) -> None:
        self.name = settings.name
        self.settings = settings
        self.emit = emit
        self.running = False
        self.stuck = False

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def health(self) -> LineHealth:
        return LineHealth(
            line=self.name,
            state="up" if self.running else "down",
            detail="loop",
            started=self.running,
            stopping=False,
            worker_alive=self.running,
            progress_age_s=120.0 if self.stuck else 0.0,
            sessions=1,
            stuck=self.stuck,
        )


class LoopFamily(LineFamily[LoopSettings]):
    name = "loop"
    section = "loops"
    line_noun = "loop"

    def validate(self, source: str, key: str, entry: Any) -> LoopSettings:
        keys = {"name": LINE_NAME_CHECK, "channels": check_number(1, 31, integer=True)}
        return LoopSettings(**validate_entry(source, key, entry, keys, ("name",)))

    def build_driver(
        self,
        settings: LoopSettings,
        emit: Emit,
        audio_sink_factory: AudioSinkFactory | None,
        power: object | None = None,
    ) -> LineDriver:
        return LoopDriver(settings, emit)


class NotAFamily:
    pass


@pytest.fixture
def loop_family() -> Iterator[None]:
    register_family("loop", "loops", __name__, "LoopFamily")
    yield
    unregister_family("loop")


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered by a test, unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_family(name)


def test_gsm_is_found_by_name_and_loaded_once() -> None:
    assert families()["gsm"].module == "drivers.gsm.family"
    assert family_sections()["modems"] == "gsm"
    family = get_family("gsm")
    assert (family.name, family.section, family.line_noun) == ("gsm", "modems", "modem")
    assert get_family("gsm") is family


def test_an_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(UnknownFamilyError, match=r"no line family 'x25' \(known families: .*gsm"):
        get_family("x25")


def test_the_gateway_imports_no_driver_until_a_line_needs_one() -> None:
    """In a fresh interpreter: the daemon and config loader alone import nothing from drivers."""
    script = textwrap.dedent(
        f"""
        import sys
        from gateway.config import parse_config
        import gateway.daemon

        def drivers_loaded():
            return sorted(name for name in sys.modules if name.split(".")[0] == "drivers")

        parse_config({MINIMAL!r})
        assert drivers_loaded() == [], drivers_loaded()
        config = parse_config({MINIMAL!r} + "[[modems]]\\nname = 'gsm0'\\nport = '/dev/x'\\n")
        assert "drivers.gsm.family" in sys.modules
        assert "drivers.gsm.modem" not in sys.modules, "the driver waits until it is built"
        print(config.lines[0].FAMILY, config.modems[0].port)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gsm", "/dev/x"]


def test_a_family_registered_at_run_time_validates_its_section_and_builds_drivers(
    loop_family: None, tmp_path: Path
) -> None:
    text = (
        MINIMAL
        + f"[outbox]\npath = '{tmp_path / 'outbox.db'}'\n"
        + "[[modems]]\nname = 'gsm0'\nport = '/dev/x'\n"
        + "[[loops]]\nname = 'loop0'\nchannels = 30\n[[loops]]\nname = 'loop1'\n"
    )
    config = parse_config(text)
    assert [(line.FAMILY, line.name) for line in config.lines] == [
        ("gsm", "gsm0"),
        ("loop", "loop0"),
        ("loop", "loop1"),
    ]
    assert config.lines_of("loop") == (LoopSettings("loop0", 30), LoopSettings("loop1", 1))
    assert [modem.name for modem in config.modems] == ["gsm0"]

    loops_only = parse_config(text.replace("[[modems]]\nname = 'gsm0'\nport = '/dev/x'\n", ""))
    gateway = Gateway(loops_only)
    try:
        assert [type(driver) for driver in gateway.drivers] == [LoopDriver, LoopDriver]
        loop0 = gateway.drivers[0]
        assert isinstance(loop0, LoopDriver) and loop0.settings.channels == 30
        assert loop0.emit == gateway.submit  # emit that returns the pending commit
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("entries", "key", "expected"),
    [
        ("[[loops]]\nchannels = 2\n", "loops[0].name", "missing required key"),
        ("[[loops]]\nname = 'l'\nchannels = 40\n", "loops[0].channels", "from 1 to 31"),
        ("[[loops]]\nname = 'l'\nspeed = 1\n", "loops[0].speed", "unknown key"),
        ("", "loops", "expected an array of tables ([[loops]])"),  # loops = 3, above [gateway]
        (
            "[[loops]]\nname = 'l'\n[[loops]]\nname = 'l'\n",
            "loops[1].name",
            "duplicate loop name 'l'",
        ),
        (
            "[[modems]]\nname = 'l'\nport = '/dev/x'\n[[loops]]\nname = 'l'\n",
            "loops[0].name",
            "duplicate loop name 'l' (also modems[0].name)",
        ),
        ("[loopz]\n", "loopz", "known sections: audio, board, desk, gateway, loops, modems"),
    ],
)
def test_a_family_section_names_each_mistake_exactly(
    loop_family: None, entries: str, key: str, expected: str
) -> None:
    text = MINIMAL + entries if entries else "loops = 3\n" + MINIMAL
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    assert caught.value.key == key
    assert expected in caught.value.problem


def test_a_family_that_cannot_be_imported_fails_only_when_configured(
    registered: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vendor_family.py").write_text("import edge112_no_such_vendor_library\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_family("vendor", "vendor_lines", "vendor_family", "VendorFamily")
    register_family("ghost", "ghost_lines", "drivers.ghost.family", "GhostFamily")
    registered.extend(["vendor", "ghost"])

    assert parse_config(MINIMAL).lines == ()  # not configured: nobody imports them

    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL + "[[vendor_lines]]\nname = 'v0'\n", "site.toml")
    assert caught.value.key == "vendor_lines"
    assert "line family 'vendor'" in caught.value.problem
    assert "'edge112_no_such_vendor_library'" in caught.value.problem

    with pytest.raises(FamilyUnavailableError, match=r"its module drivers.ghost.family is not"):
        get_family("ghost")


def test_a_registered_class_must_be_a_family_of_its_section(registered: list[str]) -> None:
    register_family("not_a_family", "nots", __name__, "NotAFamily")
    register_family("wrong_section", "wrongs", __name__, "LoopFamily")
    registered.extend(["not_a_family", "wrong_section"])
    with pytest.raises(FamilyUnavailableError, match="has no LineFamily class 'NotAFamily'"):
        get_family("not_a_family")
    with pytest.raises(FamilyUnavailableError, match="says it is family 'loop' of section"):
        get_family("wrong_section")


def test_names_and_sections_are_registered_once(loop_family: None) -> None:
    register_family("loop", "loops", __name__, "LoopFamily")  # the same again: fine
    with pytest.raises(ValueError, match="'loop' is already registered"):
        register_family("loop", "other_loops", __name__, "LoopFamily")
    with pytest.raises(ValueError, match="section 'modems' already belongs to family 'gsm'"):
        register_family("gsm2", "modems", __name__, "LoopFamily")
    unregister_family("never-registered")  # ignored
