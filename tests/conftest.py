"""Shared test scaffolding: a real broker, feed monitors, schema checks, tools, waiting.

* ``broker`` / ``monitor``: a real mosquitto on a free loopback port and a
  subscriber (``gateway.consumer.FeedMonitor``) on it.
* ``validate_event``: an event against its published JSON Schema.
* ``require_tool`` and the ``requires_tool`` marker: a test that needs an
  external program (sox, espeak-ng, multimon-ng, openssl, mosquitto) is
  *skipped* with the reason when it is missing, never passed without checking.
  With ``EDGE112_REQUIRE_TOOLS=1`` (set by ``.ci/run``: CI installs every tool,
  so a missing one is an install bug) it *fails* instead.
* ``wait_until``: poll an observable condition up to a deadline, then fail the
  test saying what did not happen. Tests never sleep to "let something happen".
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import jsonschema
import pytest
from referencing import Registry, Resource

from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from gateway.contract import all_schemas

pytest_plugins = ["pytester"]  # tests/test_conftest.py runs pytest on the helpers below

# --------------------------------------------------------------------- external tools

REQUIRE_TOOLS_ENV = "EDGE112_REQUIRE_TOOLS"
DAEMON_DIRS = "/usr/local/sbin:/usr/sbin:/sbin"  # Debian puts mosquitto here, off a user's PATH
APT_PACKAGES = {  # tool -> the Debian/Ubuntu package that provides it
    "sox": "sox",
    "espeak-ng": "espeak-ng",
    "multimon-ng": "multimon-ng",
    "openssl": "openssl",
    "mosquitto": "mosquitto",
    "tshark": "tshark",
    "text2pcap": "tshark",
}


def tools_required() -> bool:
    """True when a missing tool must fail the test (``EDGE112_REQUIRE_TOOLS`` set, not 0)."""
    return os.environ.get(REQUIRE_TOOLS_ENV, "").strip() not in ("", "0")


def find_tool(name: str) -> str | None:
    """The path of program ``name`` on PATH or in the sbin directories, or None."""
    return shutil.which(name) or shutil.which(name, path=DAEMON_DIRS)


def missing_tool_reason(name: str) -> str:
    return f"{name} is not installed (apt install {APT_PACKAGES.get(name, name)})"


def require_tool(name: str) -> str:
    """The path of ``name``; when it is missing, skip the test (fail under EDGE112_REQUIRE_TOOLS).

    The skip or failure is reported at the line that asked for the tool.
    """
    __tracebackhide__ = True
    path = find_tool(name)
    if path is None:
        _missing(name)
    return path


def _missing(name: str) -> NoReturn:
    __tracebackhide__ = True
    reason = missing_tool_reason(name)
    if tools_required():
        pytest.fail(
            f"{reason}; {REQUIRE_TOOLS_ENV} is set, so every tool must be present", pytrace=False
        )
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_tool(*names): the test needs these programs; skipped when one is missing "
        f"(failed when {REQUIRE_TOOLS_ENV}=1)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip at collection, reported at the test's own line, unless tools are required."""
    if tools_required():
        return  # pytest_runtest_setup fails them instead
    for item in items:
        for name in _tools_of(item):
            if find_tool(name) is None:
                item.add_marker(pytest.mark.skip(reason=missing_tool_reason(name)))
                break


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in _tools_of(item):
        require_tool(name)


def _tools_of(item: pytest.Item) -> list[str]:
    return [name for marker in item.iter_markers("requires_tool") for name in marker.args]


# --------------------------------------------------------------------- waiting

WAIT_TIMEOUT_S = 10.0  # in-process waits: generous, it costs nothing when the condition comes
PROCESS_TIMEOUT_S = 60.0  # waits on another process (the gateway): CI machines are loaded
POLL_INTERVAL_S = 0.01

_T = TypeVar("_T")


def wait_until(
    condition: Callable[[], _T],
    timeout: float = WAIT_TIMEOUT_S,
    *,
    what: str = "condition",
    interval: float = POLL_INTERVAL_S,
) -> _T:
    """Poll ``condition`` until it returns something truthy and return that.

    At the deadline, fail the test with ``what`` (say what should have happened).
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """``wait_until(condition, timeout=10.0, what=...)`` for tests that take it as a fixture."""
    return wait_until


# --------------------------------------------------------------------- broker and feed


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    require_tool("mosquitto")
    with PrivateBroker(workdir=tmp_path / "broker") as running:
        yield running


@pytest.fixture
def monitor(broker: PrivateBroker) -> Iterator[FeedMonitor]:
    with FeedMonitor(broker.url) as feed:
        yield feed


# --------------------------------------------------------------------- the contract


def _registry() -> Registry:
    resources = [(body["$id"], Resource.from_contents(body)) for body in all_schemas().values()]
    registry: Registry = Registry().with_resources(resources)
    return registry


_REGISTRY = _registry()


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``event`` matches its type's schema."""
    schemas = all_schemas()
    assert event["type"] in schemas, f"no schema for {event['type']}"
    jsonschema.Draft202012Validator(schemas[event["type"]], registry=_REGISTRY).validate(event)
