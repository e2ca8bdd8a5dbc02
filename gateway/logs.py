"""Logging to stderr in a form journald reads well, with caller numbers masked.

Under systemd (``JOURNAL_STREAM`` set) each line starts with the sd-daemon
priority prefix (``<3>`` error ... ``<7>`` debug) and carries no timestamp,
since journald adds its own.

Caller numbers are personal data (UU PDP 27/2022). Code logs a number it holds
through ``drivers.privacy.mask_number``; as a safety net, everything logging and
Python's own error reports write goes through
``drivers.privacy.mask_numbers_in_text`` (its docstring says what counts as a
number)::

    log.debug ... log.exception, stack_info ---------------+
    sys.excepthook        uncaught, main thread    -> log -+
    threading.excepthook  uncaught, other threads  -> log -+-> MaskingFormatter -> stderr
    sys.unraisablehook    __del__, callbacks       -> log -+   (the whole text)
    warnings.warn         logging.captureWarnings  -> log -+
    a log call that fails (bad arguments) -> MaskingStreamHandler.handleError -> stderr

``setup_logging``, called by every ``edge112`` command that runs something
(``run``, ``demo``, ``sim``...), installs all of it. Masking adds about 5 us to
a line without 7 digits close together (most lines: already-masked numbers, ids,
times, addresses) and 25-50 us to one with them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from types import TracebackType
from typing import TextIO

from gateway.privacy import mask_numbers_in_text

_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
uncaught_log = logging.getLogger("edge112.uncaught")


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks numbers in the whole result: message, traceback, stack."""

    def __init__(self, journald: bool) -> None:
        fmt = (
            "%(name)s: %(message)s"
            if journald
            else "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        # The whole text, not just the message: another handler may have cached an
        # unmasked record.exc_text, and a thread or logger name may hold digits. Only
        # our own leading asctime is skipped: it would send every line down the
        # slower path of mask_numbers_in_text.
        text = super().format(record)
        if not self.journald:
            time_length = len(record.asctime)
            return text[:time_length] + mask_numbers_in_text(text[time_length:])
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in mask_numbers_in_text(text).splitlines())


class MaskingStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose "--- Logging error ---" report is masked too.

    The stock report prints the record's raw message and arguments, which is
    exactly where a caller number would be (``log.info("%d", "+62...")``).
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if not (logging.raiseExceptions and sys.stderr):
            return
        report = (
            "--- Logging error ---\n"
            + "".join(traceback.format_exception(*sys.exc_info()))
            + f"Logged from file {record.filename}, line {record.lineno}\n"
        )
        try:
            report += f"Message: {record.msg!r}\nArguments: {record.args!r}\n"
        except Exception:
            report += "Unable to print the message and arguments.\n"
        _write_masked(report)


def _write_masked(text: str) -> None:
    try:
        sys.stderr.write(mask_numbers_in_text(text))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed or gone: nowhere left to report to


def _log_uncaught(
    exc_type: type[BaseException],
    exc_value: BaseException | None,
    exc_traceback: TracebackType | None,
    message: str,
) -> None:
    """Log an uncaught exception at CRITICAL through the masking handler; never raise.

    A hook that raises makes Python print both tracebacks unmasked, so any
    failure here falls back to a masked plain traceback on stderr.
    """
    try:
        if exc_value is None:  # a thread's hook may get a type alone
            uncaught_log.critical("%s: %s", message, exc_type.__name__)
        else:
            uncaught_log.critical("%s", message, exc_info=(exc_type, exc_value, exc_traceback))
    except Exception:
        trace = traceback.format_exception(exc_type, exc_value, exc_traceback)
        _write_masked(message + "\n" + "".join(trace))


def _excepthook(
    exc_type: type[BaseException],
    exc_value: BaseException,
    exc_traceback: TracebackType | None,
) -> None:
    _log_uncaught(exc_type, exc_value, exc_traceback, "uncaught exception")


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if issubclass(args.exc_type, SystemExit):
        return  # as the default hook: SystemExit ends a thread quietly
    name = args.thread.name if args.thread is not None else "?"
    _log_uncaught(
        args.exc_type, args.exc_value, args.exc_traceback, f"uncaught exception in thread {name}"
    )


def _unraisablehook(args: sys.UnraisableHookArgs) -> None:
    try:
        about = f"{args.err_msg or 'Exception ignored in'}: {args.object!r}"
    except Exception:
        about = f"{args.err_msg or 'Exception ignored in'}: <unprintable object>"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, about)


def install_exception_hooks() -> None:
    """Route uncaught exceptions (every thread), unraisable ones and warnings through logging."""
    sys.excepthook = _excepthook
    threading.excepthook = _threading_excepthook
    sys.unraisablehook = _unraisablehook
    logging.captureWarnings(True)


def setup_logging(level: str = "info") -> None:
    """Log to stderr (journald form under systemd), masked, and install the exception hooks."""
    handler = MaskingStreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    install_exception_hooks()
