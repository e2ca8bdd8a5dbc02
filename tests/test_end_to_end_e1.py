"""An E1 span end to end, as a technician runs it: ``edge112 sim e1`` writes both directions
of a span to TCP, ``edge112 run`` taps it (``[[spans]]``, B-channel audio on), a subscriber
checks what a regional center receives.

Both are the installed command line in processes of their own. The simulator prints one
JSON line per call with what happened on the line (caller, channel, outcome, the cause and
events a gateway must report); every one of them must reach the subscriber as such, in
schema-valid events with contiguous ``seq``, and every answered call with a stereo
recording of both directions.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.audio.wav import read_format
from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from gateway.demo import run_demo
from tests.conftest import PROCESS_TIMEOUT_S, validate_event
from tests.drivers.e1.test_sim import _free_port
from tests.test_end_to_end import GATEWAY, REGION, GatewayProcess

REPO = Path(__file__).resolve().parent.parent
END_TYPES = ("call.ended", "call.abandoned")
SCENARIO = """
[[calls]]                       # answered; the caller speaks and presses 1 1 2
at_s = 0.5
caller = "+6281234567890"
ring_s = 1.0
talk_s = 3.0
audio = [{silence = 0.3}, {speech = 1.0}, {dtmf = "112"}]

[[calls]]                       # the caller gives up before the answer (terputus)
at_s = 0.8
caller = "081398765432"
outcome = "abandoned"
ring_s = 1.5

[[calls]]                       # withheld number, the centre is busy
at_s = 1.1
caller = "0215551234"
presentation = "restricted"
outcome = "busy"

[[calls]]                       # no caller id, overlap dialling, a preferred channel the
at_s = 1.4                      # centre moves; the call-taker hangs up
overlap = true
exclusive = false
confirmed_channel = 20
ring_s = 1.2
talk_s = 2.0
cleared_by = "centre"

[[calls]]                       # the centre rejects it
at_s = 1.7
caller = "+6285555123"
outcome = "rejected"
ring_s = 0.6

[[faults]]                      # damaged frames and a retransmission on the way
at_s = 0.6
kind = "bad_fcs"
count = 2

[[faults]]
at_s = 1.0
kind = "retransmission"
direction = "u2n"
"""


class Simulator:
    """``edge112 sim e1`` in its own process; its per-call JSON lines collected as they come."""

    def __init__(self, tmp_path: Path, urls: tuple[str, str]) -> None:
        scenario = tmp_path / "span.toml"
        scenario.write_text(SCENARIO)
        self.calls: list[dict[str, Any]] = []
        self.log = tmp_path / "sim.log"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gateway.cli", "sim", "e1"),
                *("--from-network", urls[0], "--from-user", urls[1]),
                *("--scenario", str(scenario), "--speed", "2"),
            ],
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),  # noqa: SIM115 (closed with the process)
            cwd=REPO,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.calls.append(json.loads(line))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(PROCESS_TIMEOUT_S)
        self._reader.join(5)


def write_config(tmp_path: Path, broker: PrivateBroker, urls: tuple[str, str]) -> Path:
    config = tmp_path / "edge112.toml"
    config.write_text(
        f'[gateway]\nid = "{GATEWAY}"\nregion = "{REGION}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        f'[outbox]\npath = "{tmp_path / "state" / "outbox.db"}"\n'
        f'[audio]\nrecordings_dir = "{tmp_path / "recordings"}"\nghost_after_s = 2.0\n'
        f'[[spans]]\nname = "e1a"\nnetwork_to_user = "{urls[0]}"\n'
        f'user_to_network = "{urls[1]}"\nb_channel_audio = true\n'
    )
    return config


def test_a_simulated_span_reaches_the_subscriber_call_for_call(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    urls = (f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}")
    simulator = Simulator(tmp_path, urls)
    gateway = GatewayProcess(write_config(tmp_path, broker, urls)).start()
    try:
        assert monitor.wait_for(
            lambda m: (
                len(m.events_of(GATEWAY, "call.audio_summary")) == 2
                and len(simulator.calls) == 5
                and len(m.events_of(GATEWAY, "call.ended") + m.events_of(GATEWAY, "call.abandoned"))
                == 5
            ),
            PROCESS_TIMEOUT_S,
        ), f"five calls and two summaries; simulator: {simulator.log.read_text()}"
        gateway.terminate()
    finally:
        gateway.stop_if_running()
        simulator.stop()
    assert gateway.process is not None and gateway.process.returncode == 0

    events = monitor.events_of(GATEWAY)
    for event in events:
        validate_event(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    statuses = [e["data"] for e in events if e["type"] == "line.status"]
    assert {"line": "e1a", "state": "up"}.items() <= next(
        s for s in statuses if s["state"] == "up"
    ).items()

    offered = [e["data"] for e in events if e["type"] == "call.offered"]
    ends = {
        e["data"]["call_id"]: e for e in events if e["type"] in ("call.ended", "call.abandoned")
    }
    assert len(offered) == len(simulator.calls) == 5
    for truth, offer in zip(
        sorted(simulator.calls, key=lambda c: c["offered_at_s"]), offered, strict=True
    ):
        assert offer["line"] == "e1a"
        assert (offer["number"], offer["presentation"]) == (truth["number"], truth["presentation"])
        end = ends[offer["call_id"]]
        assert end["type"] == truth["event"]
        data = end["data"]
        assert data["b_channel"] == truth["b_channel"] and data["called"] == truth["called"]
        assert (data["cause"], data["q850_cause"]) == (truth["cause"], truth["q850_cause"])
        assert (data["cleared_by"], data["outcome"]) == (truth["cleared_by"], truth["outcome"])

    summaries = {
        e["data"]["call_id"]: e["data"] for e in events if e["type"] == "call.audio_summary"
    }
    speaking = next(o for o in offered if o["number"] == "+6281234567890")
    assert summaries[speaking["call_id"]]["digits"] == "112"
    dtmf = [e["data"]["digit"] for e in events if e["type"] == "call.dtmf"]
    assert dtmf == ["1", "1", "2"]
    for summary in summaries.values():
        assert summary["silent_call"] is None  # a passive tap cannot prompt the caller
        recording = summary["recording"]
        path = Path(recording["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recording["sha256"]
        assert read_format(path).channels == 2
    log_text = gateway.log.read_text()
    assert "6281234567890" not in log_text, "caller numbers never reach the log"


@pytest.mark.requires_tool("mosquitto")  # the demo starts its own broker
def test_the_demo_shows_calls_from_the_span_and_the_modems() -> None:
    out = io.StringIO()
    assert run_demo(duration_s=10.0, calls_per_minute=30.0, out=out) == 0
    text = out.getvalue()
    offered = int(re.search(r"calls offered on the span e1a: (\d+)", text).group(1))  # type: ignore[union-attr]
    reported = int(re.search(r"\((?:.*); (\d+) on e1a\)", text).group(1))  # type: ignore[union-attr]
    assert offered == reported > 0
    lines = text.splitlines()
    assert any(
        " e1a " in line and "line.status" in line and "up: D-channel up" in line for line in lines
    )
    assert any(" gsm0 " in line and "call.offered" in line for line in lines)
    span_summaries = [line for line in lines if " e1a " in line and "call.audio_summary" in line]
    assert span_summaries and all("recorded" in line for line in span_summaries)
    assert not [line for line in lines if " e1a " in line and "nothing for" in line]
    assert re.search(r"lost:\s+0\b", text)
