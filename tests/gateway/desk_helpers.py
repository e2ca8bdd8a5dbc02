"""Helpers for the desk tests: a gateway on a simulated modem with its desk endpoint on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.broker import PrivateBroker, free_port
from gateway.consumer import FeedMonitor
from tests.conftest import PROCESS_TIMEOUT_S, wait_until

GATEWAY, REGION = "bontang-01", "64.74"
TOKEN = "desk-token-0123456789abcdef"


def write_gateway_config(
    tmp_path: Path, broker: PrivateBroker, modem: Path, *, port: int | None = None
) -> tuple[Path, int]:
    """An edge112.toml with one simulated modem and the desk endpoint on a free port."""
    port = port or free_port()
    token_file = tmp_path / "desk-token"
    token_file.write_text(TOKEN + "\n")
    config = tmp_path / "edge112.toml"
    config.write_text(
        f'[gateway]\nid = "{GATEWAY}"\nregion = "{REGION}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n'
        f'[audio]\nrecordings_dir = "{tmp_path / "recordings"}"\n'
        f'[desk]\nlisten = "127.0.0.1:{port}"\ntoken_file = "{token_file}"\n'
        f'[[modems]]\nname = "gsm0"\nport = "{modem}"\n'
        "answer_after_rings = 1\ncaller_id_grace_ms = 200\n"
    )
    return config, port


def report_call(modem: SimulatedGsmModem, monitor: FeedMonitor) -> dict[str, Any]:
    """Place a short call on the simulated modem; its call.offered event, once received."""
    before = {e["data"]["call_id"] for e in monitor.events_of(GATEWAY, "call.offered")}
    modem.place_call(SimulatedCall(number="+6281234567890", talk_s=0.3, ring_interval_s=0.3))

    def offered() -> dict[str, Any] | None:
        fresh = [
            e
            for e in monitor.events_of(GATEWAY, "call.offered")
            if e["data"]["call_id"] not in before
        ]
        return fresh[0] if fresh else None

    return wait_until(offered, PROCESS_TIMEOUT_S, what="call.offered received from the gateway")


def events_for(monitor: FeedMonitor, event_type: str, call_id: str) -> list[dict[str, Any]]:
    return [e for e in monitor.events_of(GATEWAY, event_type) if e["data"]["call_id"] == call_id]
