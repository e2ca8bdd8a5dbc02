"""``tests/conftest.py``: a missing tool skips the test (fails it in CI); waits have deadlines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_TOOLS_ENV, require_tool, wait_until

REPO = Path(__file__).resolve().parents[1]
ABSENT = "edge112-no-such-tool"


def test_a_present_tool_is_found() -> None:
    assert Path(require_tool("sh")).name == "sh"


@pytest.mark.parametrize("setting", [None, "", "0"])
def test_a_missing_tool_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    if setting is None:
        monkeypatch.delenv(REQUIRE_TOOLS_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_TOOLS_ENV, setting)
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT} is not installed \\(apt install"):
        require_tool(ABSENT)


def test_a_missing_tool_fails_when_tools_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT} is not installed"):
        require_tool(ABSENT)


MARKED = f"""
import pytest

@pytest.mark.requires_tool("sh", "{ABSENT}")
def test_needs_a_missing_tool():
    raise AssertionError("must not run")

@pytest.mark.requires_tool("sh")
def test_needs_a_present_tool():
    pass
"""


@pytest.mark.parametrize(
    ("setting", "outcome", "report"),
    [
        ("0", "skipped", f"SKIPPED [[]1[]] test_marked.py:*: {ABSENT} is not installed (apt *)"),
        ("1", "errors", f"{ABSENT} is not installed (apt *); {REQUIRE_TOOLS_ENV} is set, *"),
    ],
    ids=["locally", "in-ci"],
)
def test_the_marker_skips_or_fails_and_says_why(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    outcome: str,
    report: str,
) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, setting)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest("from tests.conftest import *  # noqa: F403")
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, **{outcome: 1})
    result.stdout.fnmatch_lines([report])


def test_wait_until_returns_what_the_condition_returned() -> None:
    started = time.monotonic()
    assert wait_until(lambda: time.monotonic() - started > 0.05 and "done") == "done"


def test_wait_until_fails_at_the_deadline_saying_what() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"the moon rose: not within 0\.05 s"):
        wait_until(lambda: False, 0.05, what="the moon rose")
