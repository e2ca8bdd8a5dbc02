"""The regional center beside ``edge112 demo``: started in-process, asked for its own figures.

The demo's gateway publishes to the demo's broker; this module starts one
center worker (``center.service.CenterService``: SQLite in the demo's
directory, the dashboard and API on a free loopback port) subscribed to the
same broker, and at the end reads back what the center itself concluded:

* completeness per gateway (``center.completeness.gateway_summaries``):
  events stored, the highest contiguous seq (every seq up to it stored),
  gaps above it, duplicates received (counted, stored once);
* calls per category for the demo's region (``center.stats.calls_by_region``).

The center is an optional part of the package (``pip install 'edge112[center]'``):
without it the demo says so and summarises from its subscriber alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.broker import free_port
from gateway.ids import uuid7_str

CENTER_READY_S = 20.0  # subscribed to the broker (it starts in well under a second)
CENTER_ID = "demo-center"  # and a suffix: two demos on one broker keep their own sessions
SESSION_EXPIRY_S = 60  # on a broker of the user's own (--broker), do not leave a long session


class CenterUnavailable(RuntimeError):
    """The center's libraries are not installed, or it would not start."""


@dataclass(frozen=True)
class CenterFigures:
    """What the center concluded about one gateway (its completeness row) and its region."""

    events: int
    contiguous_seq: int
    highest_seq: int
    duplicates: int
    missing: int
    gaps: list[dict[str, Any]]
    categories: dict[str, int]  # darurat, informasi, prank, ghost, terputus, unclassified
    calls: int

    def missing_below(self, last_seq: int) -> list[int]:
        """Seqs 1..last_seq the center does not hold: its gaps, and any past its highest seq.

        Everything up to the watermark is stored, and the gaps list every hole between
        the watermark and the highest seq stored.
        """
        in_gaps = [seq for gap in self.gaps for seq in range(gap["first_seq"], gap["last_seq"] + 1)]
        after = range(max(self.highest_seq, self.contiguous_seq) + 1, last_seq + 1)
        return sorted(seq for seq in {*in_gaps, *after} if seq <= last_seq)


class DemoCenter:
    """One center worker on the demo's broker, SQLite in ``workdir``."""

    def __init__(self, workdir: Path, broker_url: str) -> None:
        try:
            from center.config import parse_center_config
            from center.service import CenterService
        except ImportError as error:
            raise CenterUnavailable(
                f"the center is not installed ({error.name}): pip install 'edge112[center]'"
            ) from None
        self.database = workdir / "center.db"
        port = free_port()
        config = parse_center_config(
            f'[center]\nid = "{CENTER_ID}-{uuid7_str()[-6:]}"\nlog_level = "warning"\n'
            f'[database]\nurl = "sqlite:///{self.database}"\n'
            f'[mqtt]\nurl = "{broker_url}"\nsession_expiry_s = {SESSION_EXPIRY_S}\n'
            'share_group = ""\n'  # a plain subscription: on a broker of the user's own
            # (--broker) the demo's center gets a copy of the feed, it never takes events
            # away from a real center's shared subscription
            "reconnect_min_s = 0.2\nreconnect_max_s = 2.0\n"
            f'[http]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
            "[completeness]\ncheck_interval_s = 1.0\n",
            "<demo center>",
        )
        self.service = CenterService(config)

    @property
    def url(self) -> str:
        return self.service.url or ""

    def start(self) -> DemoCenter:
        self.service.start()
        if not self.service.wait_ready(CENTER_READY_S):
            self.service.stop()
            raise CenterUnavailable(f"the center did not subscribe within {CENTER_READY_S:g} s")
        return self

    def figures(self, gateway_id: str, region: str) -> CenterFigures | None:
        """The center's completeness row for ``gateway_id``, None before its first event."""
        from center.completeness import gateway_summaries
        from center.stats import calls_by_region

        now = datetime.now(UTC)
        with self.service.read_engine.connect() as connection:
            row = next(
                (s for s in gateway_summaries(connection, now) if s["gateway_id"] == gateway_id),
                None,
            )
            if row is None:
                return None
            regions = calls_by_region(connection, now - timedelta(days=1), now + timedelta(days=1))
        counts = next((r for r in regions if r["region"] == region), {})
        names = ("darurat", "informasi", "prank", "ghost", "terputus", "unclassified")
        return CenterFigures(
            events=row["events"],
            contiguous_seq=row["contiguous_seq"],
            highest_seq=row["highest_seq"],
            duplicates=row["duplicates"],
            missing=row["missing"],
            gaps=row["gaps"],
            categories={name: int(counts.get(name, 0)) for name in names},
            calls=int(counts.get("calls", 0)),
        )

    def stop(self) -> None:
        self.service.stop()
