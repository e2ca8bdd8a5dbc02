"""Logging to stderr in a form journald reads well, with caller numbers masked.

Under systemd (``JOURNAL_STREAM`` set) each line starts with the sd-daemon
priority prefix (``<3>`` error ... ``<7>`` debug) and carries no timestamp,
since journald adds its own. Caller numbers are personal data (UU PDP
27/2022): code logs them through :func:`mask_number`, and a filter masks any
phone-number-like run of digits that slips through.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from gateway.privacy import mask_number

# A phone-number-like run standing alone: not inside an id, a path, a time or a version.
_PHONE = re.compile(r"(?<![\w./:-])\+?\d{7,15}(?![\w./:-])")
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def mask_text(text: str) -> str:
    """Mask every stand-alone phone-number-like run in ``text`` (``gateway.privacy`` style)."""
    return _PHONE.sub(lambda match: mask_number(match.group()), text)


class MaskingFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        fmt = (
            "%(name)s: %(message)s"
            if journald
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = mask_text(super().format(record))
        if self.journald:
            priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
            text = "\n".join(f"<{priority}>{line}" for line in text.splitlines())
        return text


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
