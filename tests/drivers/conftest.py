"""Shared helpers for driver tests: real pseudo-terminals.

``wait_until`` (deadline-based waiting) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import tty
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


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
