"""The simulator's pseudo-terminals and the paths that point at them.

``open_linked_pty`` makes a raw PTY and links a chosen path at its slave side
(``/tmp/edge112/gsm0 -> /dev/pts/7``), so the gateway opens the path as it
would open ``/dev/serial/by-id/...``.
"""

from __future__ import annotations

import logging
import os
import tty
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


def open_linked_pty(link: str | Path) -> tuple[int, int, str, Path]:
    """A raw PTY linked at ``link``: (master fd, non-blocking; slave fd; device; link).

    Raw mode: the line discipline neither echoes nor translates CR/LF, as a
    USB serial port would not.
    """
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.set_blocking(master, False)
        device = os.ttyname(slave)
        path = Path(link)
        replace_link(path, device)
    except OSError:
        os.close(master)
        os.close(slave)
        raise
    return master, slave, device, path
