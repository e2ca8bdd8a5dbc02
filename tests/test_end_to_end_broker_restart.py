"""The broker restarts and dies under a gateway's feed; the center still stores every event once.

A GSM gateway (``edge112 run``, two simulated modems) takes calls without
pause while mosquitto (persistence on) is stopped with SIGTERM and started
again on the same port, then killed with SIGKILL (what it held in memory since
its last save is gone) and started again. Afterwards every event the gateway
committed is stored exactly once in the center: no gap, duplicates counted and
not stored twice, every call that rang counted once.

The center runs as one worker with a plain subscription (``mqtt.share_group =
""``): Debian 12's mosquitto 2.0.11 restores a persistent session's plain
subscriptions from its persistence file, not its shared ones (see
docs/center.md), so with a share group the events published between the
restart and the worker's return would be lost to it.
"""

from __future__ import annotations

import functools
import itertools
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from center.storage import tables
from drivers.simulated.gsm_modem import SimulatedGsmModem
from gateway.broker import PrivateBroker
from tests.conftest import PROCESS_TIMEOUT_S, wait_until
from tests.test_end_to_end import read_outbox
from tests.test_end_to_end_center import (
    Site,
    abandoned,
    at_least,
    gateway_rows,
    gsm_call,
    lines_up,
    region_rows,
    settled,
    site_state,
    start_center,
)

pytestmark = [pytest.mark.slow, pytest.mark.requires_tool("mosquitto")]


def kill_broker(broker: PrivateBroker) -> None:
    """SIGKILL: mosquitto writes nothing (what it held since its last save is gone)."""
    assert broker.process is not None
    broker.process.kill()
    broker.process.wait(PROCESS_TIMEOUT_S)
    broker.process = None


class CallFeed:
    """Places calls on every modem of a site, one after another, until stopped."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(modem, index), daemon=True)
            for index, modem in enumerate(site.modems)
        ]

    def start(self) -> CallFeed:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, modem: SimulatedGsmModem, index: int) -> None:
        for number in itertools.count():
            if self._stop.is_set():
                return
            spec = (
                abandoned(f"+62812{index}{number:06d}")
                if number % 3 == 2
                else gsm_call(f"+62813{index}{number:06d}", talk_s=0.2)
            )
            placed = modem.place_call(spec)
            self.site.placed.append(placed)
            placed.wait(PROCESS_TIMEOUT_S)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(PROCESS_TIMEOUT_S)


def test_every_event_stored_once_across_a_broker_restart_and_a_broker_kill(
    tmp_path: Path,
) -> None:
    broker = PrivateBroker(workdir=tmp_path / "broker", persistence=True).start()
    # One worker, a plain subscription (share_group ""): mosquitto 2.0.11 restores a persistent
    # session's plain subscriptions from its persistence file, not its shared ones.
    center, api = start_center(broker, f"sqlite:///{tmp_path / 'center.db'}", share_group="")
    site = Site("bontang-02", "64.74", tmp_path / "gateway", {})
    feed: CallFeed | None = None
    try:
        site.start_gsm(broker, 2, audio=False)
        wait_until(lambda: lines_up(api, site) == 2, PROCESS_TIMEOUT_S, what="modems up")
        feed = CallFeed(site).start()

        def stored() -> int:
            """The center's watermark: every seq up to it stored."""
            row = gateway_rows(api).get(site.gateway_id)
            return int(row["contiguous_seq"]) if row else 0

        def committed_now() -> int:
            snapshot = read_outbox(site.outbox)
            return snapshot.committed if snapshot else 0

        wait_until(lambda: stored() >= 10, PROCESS_TIMEOUT_S, what="the feed reaches the center")
        outages = []
        for outage in ("SIGTERM", "SIGKILL"):
            before = committed_now()
            if outage == "SIGTERM":
                broker.stop()  # mosquitto saves its sessions and queues, then exits
            else:
                kill_broker(broker)
            # the gateway keeps committing calls while the broker is away
            wait_until(
                at_least(committed_now, before + 8),
                PROCESS_TIMEOUT_S,
                what=f"calls committed while the broker is down ({outage})",
            )
            broker.start()  # the same port, the same persistence directory
            down_to = committed_now()
            outages.append((outage, before, down_to))
            try:
                wait_until(
                    at_least(stored, down_to),
                    PROCESS_TIMEOUT_S,
                    what=f"seqs {before + 1}-{down_to}, committed while the broker was down "
                    f"({outage}), all stored at the center",
                )
            except pytest.fail.Exception as failure:
                pytest.fail(f"{failure}; {site_state(api, site)}")
        feed.stop()
        try:
            result = wait_until(
                functools.partial(settled, api, site),
                PROCESS_TIMEOUT_S,
                what="the center holds every seq the gateway committed",
            )
        except pytest.fail.Exception as failure:
            pytest.fail(f"{failure}; {site_state(api, site)}")
        assert result is not None
        committed, row = result
        with center.engine.connect() as connection:
            count, distinct = connection.execute(
                select(func.count(), func.count(func.distinct(tables.events.c.seq))).where(
                    tables.events.c.gateway_id == site.gateway_id
                )
            ).one()
        print(
            f"broker outages: committed {committed}, stored {row['events']}, "
            f"duplicates received {row['duplicates']}, calls placed {len(site.placed)}, "
            f"committed during the outages (kind, from, to): {outages}"
        )
        assert committed > 30
        assert row["events"] == row["contiguous_seq"] == row["highest_seq"] == committed
        assert (row["gaps"], row["missing"]) == ([], 0)
        assert count == distinct == committed, "every event stored exactly once"
        assert row["duplicates"] >= 0
        offered = [p for p in site.placed if p.rings > 0]
        regions = region_rows(api)
        assert regions["64.74"]["calls"] == len(offered), "every call that rang, counted once"
    finally:
        if feed is not None:
            feed.stop()
        site.stop()
        api.close()
        center.stop()
        broker.close()
