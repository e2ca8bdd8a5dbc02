"""Shared helpers for driver tests: real pseudo-terminals and deadline-based waiting."""

from __future__ import annotations

import contextlib
import os
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

WAIT_TIMEOUT_S = 5.0


Waiter = Callable[..., None]


def _wait_until(condition: Callable[[], object], timeout: float = WAIT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Waiter:
    """``wait_until(condition, timeout=5.0)``: poll until truthy; fail the test at the deadline."""
    return _wait_until


@dataclass
class PtyPair:
    """A raw pseudo-terminal: the code under test opens ``path``, the test owns ``master``."""

    master: int
    slave: int
    path: str

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self.slave = -1


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    master, slave = os.openpty()
    tty.setraw(slave)
    pair = PtyPair(master, slave, os.ttyname(slave))
    yield pair
    pair.close()
