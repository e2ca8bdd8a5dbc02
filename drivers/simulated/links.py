"""Paths that point at the simulator's pseudo-terminals (``/tmp/edge112/gsm0 -> /dev/pts/7``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("edge112.drivers.simulated")


def replace_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target``, replacing a stale symlink but never a real file."""
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise FileExistsError(f"{link} exists and is not a symlink; not replacing it")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def remove_link(link: Path, target: str) -> None:
    """Remove ``link`` if it still points at ``target`` (another simulator may have taken it)."""
    try:
        if link.is_symlink() and os.readlink(link) == target:
            link.unlink()
    except OSError as exc:
        logger.debug("could not remove %s: %s", link, exc)
