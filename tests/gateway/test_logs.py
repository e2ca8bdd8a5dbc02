"""``gateway.logs``: no caller number reaches stderr, whichever way the text gets there.

Each test installs the real ``setup_logging`` with stderr redirected to a buffer,
then logs, raises in a thread, or drops an object whose ``__del__`` fails, and
reads what was written. The numbers come from ``tests.gateway.test_privacy.py``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings

from gateway.logs import MaskingFormatter, MaskingStreamHandler, setup_logging
from tests.gateway.test_privacy import leaked_digits, numbers_in_text

REPO = Path(__file__).resolve().parents[2]
NUMBER = "+6281234567890"
log = logging.getLogger("edge112.test")


@contextlib.contextmanager
def installed_logging(journald: bool = True) -> Iterator[io.StringIO]:
    """``setup_logging("debug")`` writing to a buffer; everything it changed is put back."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, os.environ.get("JOURNAL_STREAM"))
    saved_hooks = (sys.excepthook, threading.excepthook, sys.unraisablehook, warnings.showwarning)
    stderr = io.StringIO()
    try:
        if journald:
            os.environ["JOURNAL_STREAM"] = "8:4242"
        else:
            os.environ.pop("JOURNAL_STREAM", None)
        with contextlib.redirect_stderr(stderr):
            setup_logging("debug")
            yield stderr
    finally:
        logging.captureWarnings(False)
        root.handlers[:], level, journal_stream = saved
        root.setLevel(level)
        if journal_stream is None:
            os.environ.pop("JOURNAL_STREAM", None)
        else:
            os.environ["JOURNAL_STREAM"] = journal_stream
        sys.excepthook, threading.excepthook, sys.unraisablehook, warnings.showwarning = saved_hooks


def raise_in_a_thread(message: str) -> None:
    def fail() -> None:
        raise RuntimeError(message)

    thread = threading.Thread(target=fail, name="line-gsm0")
    thread.start()
    thread.join()  # the excepthook has run by the time join returns


# ------------------------------------------------------------------ the reviewer's examples


@pytest.mark.parametrize("journald", [True, False], ids=["journald", "terminal"])
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call from +6281234567890.", "call from +6281*******90."),
        ("call from +62 812-3456-7890", "call from +62 81*-****-**90"),
        ("call from 0812 3456 7890", "call from 0812 **** **90"),
        ("call from (0541) 123456", "call from (****) ****56"),
        ("IMSI 510101234567890123", "IMSI 5101************23"),
    ],
)
def test_reviewer_examples_are_masked_in_log_lines(text, masked, journald):
    with installed_logging(journald) as stderr:
        log.warning("%s", text)

    assert masked in stderr.getvalue()


@pytest.mark.parametrize("journald", [True, False], ids=["journald", "terminal"])
def test_timestamps_ids_paths_and_addresses_stay_readable(journald):
    line = (
        "event 019ac8e2-5a1f-7c3e-9d2a-1b4c5d6e7f80 seq=123456 at 2026-12-04T22:22:36.123Z"
        " (22:22:36) region 64.74 via 127.0.0.1:1883 after 1.5 s, recording"
        " /var/lib/edge112/recordings/2026/12/04/"
        "gsm0-20261204T222236Z-019ac8e2-5a1f-7c3e-9d2a-1b4c5d6e7f80.wav"
    )
    with installed_logging(journald) as stderr:
        log.info("%s", line)

    assert line in stderr.getvalue()
    assert "*" not in stderr.getvalue()


# ------------------------------------------------------------------ every way to stderr


@given(numbers_in_text())
@settings(max_examples=100, deadline=None)
def test_no_number_survives_a_log_line(case):
    number, text = case
    with installed_logging() as stderr:
        log.info("caller %s", text)

    assert stderr.getvalue().startswith("<6>edge112.test: caller ")
    assert leaked_digits(number, stderr.getvalue()) == []


@given(numbers_in_text())
@settings(max_examples=100, deadline=None)
def test_no_number_survives_log_exception(case):
    number, text = case
    with installed_logging() as stderr:
        try:
            raise ValueError(f"no line free for {text}")
        except ValueError:
            log.exception("dropping %s", text)

    output = stderr.getvalue()
    assert "Traceback" in output and "ValueError: no line free for" in output
    assert leaked_digits(number, output) == []


@given(numbers_in_text())
@settings(max_examples=100, deadline=None)
def test_no_number_survives_an_uncaught_exception_in_a_thread(case):
    number, text = case
    with installed_logging() as stderr:
        raise_in_a_thread(f"cannot answer {text}")

    output = stderr.getvalue()
    assert "<2>edge112.uncaught: uncaught exception in thread line-gsm0" in output
    assert "RuntimeError: cannot answer" in output
    assert leaked_digits(number, output) == []


def test_every_line_of_a_traceback_carries_the_journald_priority():
    with installed_logging(journald=True) as stderr:
        raise_in_a_thread(f"cannot answer {NUMBER}")

    lines = stderr.getvalue().splitlines()
    assert len(lines) > 3
    assert all(line.startswith("<2>") for line in lines)
    assert "+6281*******90" in lines[-1]


def test_an_uncaught_exception_in_the_main_thread_is_masked():
    program = (
        "from gateway.logs import setup_logging\n"
        "setup_logging()\n"
        f"raise ValueError('no line free for {NUMBER}.')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=REPO,
        env={**os.environ, "JOURNAL_STREAM": "8:4242"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "<2>edge112.uncaught: uncaught exception" in result.stderr
    assert "ValueError: no line free for +6281*******90." in result.stderr
    assert "1234567890" not in result.stderr


def test_an_exception_in_del_is_masked():
    class Call:
        def __del__(self) -> None:
            raise RuntimeError(f"cannot close call from {NUMBER}")

    with installed_logging() as stderr:
        Call()  # dropped at once: __del__ runs, its error goes to sys.unraisablehook

    assert "RuntimeError: cannot close call from +6281*******90" in stderr.getvalue()
    assert "1234567890" not in stderr.getvalue()


def test_a_warning_is_masked():
    with installed_logging() as stderr, warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)  # catch_warnings put the stock showwarning back
        warnings.warn(f"slow answer for {NUMBER}", UserWarning, stacklevel=1)

    assert "slow answer for +6281*******90" in stderr.getvalue()
    assert "1234567890" not in stderr.getvalue()


def test_a_log_call_with_bad_arguments_is_reported_masked():
    with installed_logging() as stderr:
        log.info("caller %d", NUMBER)  # %d of a str: logging reports its own error

    assert "--- Logging error ---" in stderr.getvalue()
    assert "+6281*******90" in stderr.getvalue()
    assert "1234567890" not in stderr.getvalue()


def test_a_traceback_cached_unmasked_by_another_handler_is_still_masked():
    other = logging.StreamHandler(io.StringIO())  # formats first, caches record.exc_text
    with installed_logging() as stderr:
        logging.getLogger().handlers.insert(0, other)
        try:
            raise ValueError(f"bad caller {NUMBER}")
        except ValueError:
            log.exception("dropping the call")

    assert NUMBER in other.stream.getvalue()  # the other handler's own business
    assert "ValueError: bad caller +6281*******90" in stderr.getvalue()
    assert "1234567890" not in stderr.getvalue()


def test_setup_logging_installs_the_handler_and_every_hook():
    with installed_logging():
        (handler,) = logging.getLogger().handlers
        assert isinstance(handler, MaskingStreamHandler)
        assert isinstance(handler.formatter, MaskingFormatter)
        assert sys.excepthook.__module__ == "gateway.logs"
        assert threading.excepthook.__module__ == "gateway.logs"
        assert sys.unraisablehook.__module__ == "gateway.logs"


def test_a_thread_ending_with_system_exit_logs_nothing():
    def leave() -> None:
        raise SystemExit(0)

    with installed_logging() as stderr:
        thread = threading.Thread(target=leave)
        thread.start()
        thread.join()

    assert stderr.getvalue() == ""
