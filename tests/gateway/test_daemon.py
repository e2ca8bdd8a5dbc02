"""The daemon: drivers built through the family registry; a stuck line makes it unhealthy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.daemon import Gateway
from gateway.families import register_family, unregister_family
from tests.gateway.test_families import MINIMAL, LoopDriver


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    register_family("loop", "loops", "tests.gateway.test_families", "LoopFamily")
    text = MINIMAL + f"[outbox]\npath = '{tmp_path / 'outbox.db'}'\n"
    text += "[[loops]]\nname = 'loop0'\n[[loops]]\nname = 'loop1'\n"
    built = Gateway(parse_config(text))
    try:
        yield built
    finally:
        built.stop()
        unregister_family("loop")


def test_each_configured_line_gets_its_familys_driver(gateway: Gateway) -> None:
    assert [(type(d), d.name) for d in gateway.drivers] == [
        (LoopDriver, "loop0"),
        (LoopDriver, "loop1"),
    ]


def test_a_stuck_line_is_named_and_a_stopped_one_is_not(gateway: Gateway) -> None:
    loop0, loop1 = gateway.drivers
    assert isinstance(loop0, LoopDriver) and isinstance(loop1, LoopDriver)
    assert gateway.unhealthy_lines() == []  # not started: nothing wrong yet
    loop0.start()
    loop1.start()
    assert gateway.unhealthy_lines() == []
    loop1.stuck = True
    assert gateway.unhealthy_lines() == ["loop1 (stuck, 120 s silent)"]
    assert not gateway.healthy()
