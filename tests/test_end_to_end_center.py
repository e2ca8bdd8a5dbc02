"""Gateways and the regional center end to end: three gateways feed one center.

**Three gateways, one center.** Two GSM gateways in different kabupaten/kota
(Kabupaten Kutai Kartanegara 64.02 with call audio, Kota Bontang 64.74 without) and
one E1 gateway (Kota Bandung 32.73, a span tapped with B-channel audio), each
``edge112 run`` in its own process with its own config and outbox; simulated
modems on pseudo-terminals in this process, ``edge112 sim e1`` in a process of
its own. One center (``CenterService``, SQLite and PostgreSQL) on the same real
mosquitto. What the test checks is what people use: the center's HTTP API
(calls per region and category, each gateway's completeness against its own
outbox) and the dashboard in headless Chromium. Classification and escalation
go through both desks: the gateway's (``edge112 annotate`` to its
``gateway/desk_http.py`` endpoint; the events travel through its outbox) and
the center's (``POST /api/v1/calls/{id}/...``, ``center/desk.py``).

The broker restarting and dying under the feed: ``test_end_to_end_broker_restart.py``.
"""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from center.config import parse_center_config
from center.service import CenterService
from center.storage import tables
from drivers.simulated.caller_audio import AudioSegment
from drivers.simulated.gsm_modem import PlacedCall, SimulatedCall, SimulatedGsmModem
from gateway.broker import PrivateBroker, free_port
from tests.center.conftest import postgres_server  # noqa: F401 (a fixture, used by name)
from tests.center.helpers import config_text
from tests.conftest import PROCESS_TIMEOUT_S, require_tool, wait_until
from tests.test_end_to_end import GatewayProcess, read_outbox

pytestmark = [pytest.mark.slow, pytest.mark.requires_tool("mosquitto")]

REPO = Path(__file__).resolve().parent.parent
TOKEN = "desk-token-0123456789"
RING_S = 0.3
STOP_GRACE_S = 10.0  # a simulator's own exit after SIGTERM
EXPECT_MS = 10_000
CATEGORIES = ("darurat", "informasi", "prank", "ghost", "terputus", "unclassified")
_schemas = itertools.count(1)

SPAN_SCENARIO = """
[[calls]]                       # answered, the caller speaks: unclassified
at_s = 0.5
caller = "+6281234567890"
ring_s = 1.0
talk_s = 2.0
audio = [{silence = 0.3}, {speech = 1.2}]

[[calls]]                       # answered, nobody speaks: ghost
at_s = 0.8
caller = "+6281298765432"
ring_s = 1.0
talk_s = 4.0
audio = [{silence = 4.0}]

[[calls]]                       # the caller gives up before the answer: terputus
at_s = 1.1
caller = "081398765432"
outcome = "abandoned"
ring_s = 1.5

[[calls]]                       # the centre rejects it: terputus
at_s = 1.4
caller = "+6285555123"
outcome = "rejected"
ring_s = 0.6
"""


def gsm_call(number: str | None, *, talk_s: float = 0.6, **options: Any) -> SimulatedCall:
    return SimulatedCall(number=number, ring_interval_s=RING_S, talk_s=talk_s, **options)


def speaking(number: str) -> SimulatedCall:
    return gsm_call(number, talk_s=2.0, audio=(AudioSegment.speech(1.5),))


def silent(number: str) -> SimulatedCall:
    return gsm_call(number, talk_s=3.5, audio=(AudioSegment.silence(3.5),))


def abandoned(number: str | None) -> SimulatedCall:
    return gsm_call(number, hangup_after_rings=1)


@dataclass
class Site:
    """One gateway: its id, region, config, process, and what it is expected to report."""

    gateway_id: str
    region: str
    directory: Path
    expected: dict[str, int]  # category -> calls
    process: GatewayProcess | None = None
    modems: list[SimulatedGsmModem] = field(default_factory=list)
    placed: list[PlacedCall] = field(default_factory=list)

    @property
    def outbox(self) -> Path:
        return self.directory / "state" / "outbox.db"

    def config_head(self, broker: PrivateBroker) -> str:
        return (
            f'[gateway]\nid = "{self.gateway_id}"\nregion = "{self.region}"\n'
            f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
            f'[outbox]\npath = "{self.outbox}"\n'
            f'[audio]\nrecordings_dir = "{self.directory / "recordings"}"\nghost_after_s = 2.0\n'
        )

    def start_gsm(
        self, broker: PrivateBroker, count: int, *, audio: bool, desk: bool = False
    ) -> Site:
        self.directory.mkdir(parents=True, exist_ok=True)
        text = self.config_head(broker)
        if desk:  # the call-taker's desk endpoint (gateway.desk_http, edge112 annotate)
            token = self.directory / "desk-token"
            token.write_text(TOKEN + "\n")
            text += f'[desk]\nlisten = "127.0.0.1:{free_port()}"\ntoken_file = "{token}"\n'
        for index in range(count):
            name = f"gsm{index}"
            modem = SimulatedGsmModem(
                self.directory / name,
                model="quectel_ec25",
                seed=index,
                audio_link=self.directory / f"{name}-audio" if audio else None,
            )
            self.modems.append(modem)
            text += f'[[modems]]\nname = "{name}"\nport = "{modem.link}"\n'
            if audio:
                text += f'audio_port = "{modem.audio_link}"\n'
            text += "answer_after_rings = 2\ncaller_id_grace_ms = 200\n"
        config = self.directory / "edge112.toml"
        config.write_text(text)
        self.process = GatewayProcess(config).start()
        return self

    def start_span(self, broker: PrivateBroker, urls: tuple[str, str]) -> Site:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "edge112.toml"
        config.write_text(
            self.config_head(broker) + f'[[spans]]\nname = "e1a"\nnetwork_to_user = "{urls[0]}"\n'
            f'user_to_network = "{urls[1]}"\nb_channel_audio = true\n'
        )
        self.process = GatewayProcess(config).start()
        return self

    def committed(self) -> int | None:
        """The outbox's highest committed seq once nothing is left to send, else None."""
        snapshot = read_outbox(self.outbox)
        if snapshot is None or snapshot.pending:
            return None
        return snapshot.committed

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop_if_running()
        for modem in self.modems:
            modem.close()


class SpanSimulator:
    """``edge112 sim e1`` in its own process, playing ``SPAN_SCENARIO`` at twice real time."""

    def __init__(self, directory: Path, urls: tuple[str, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        scenario = directory / "span.toml"
        scenario.write_text(SPAN_SCENARIO)
        self.log = directory / "sim.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gateway.cli", "sim", "e1"),
                    *("--from-network", urls[0], "--from-user", urls[1]),
                    *("--scenario", str(scenario), "--speed", "2"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO,
            )

    def stop(self) -> None:
        """SIGTERM; SIGKILL when it does not exit (a write to a tap that has gone blocks)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(PROCESS_TIMEOUT_S)


def start_center(
    broker: PrivateBroker, database_url: str, *, share_group: str = "center"
) -> tuple[CenterService, httpx.Client]:
    text = config_text(broker.url, database_url, http=True, port=free_port(), token=TOKEN)
    text = text.replace("[mqtt]\n", f'[mqtt]\nshare_group = "{share_group}"\n', 1)
    config = parse_center_config(text, "<test>")
    service = CenterService(config).start()
    assert service.wait_ready(PROCESS_TIMEOUT_S), "the center subscribed"
    api = httpx.Client(base_url=service.url or "", timeout=30)
    wait_until(lambda: _answers(api), PROCESS_TIMEOUT_S, what="the center's API answers")
    return service, api


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get("/api/v1/health").status_code == 200
    except httpx.TransportError:
        return False


def gateway_rows(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {row["gateway_id"]: row for row in api.get("/api/v1/gateways").json()}


def region_rows(api: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = api.get("/api/v1/stats/regions", params={"days": 2})
    assert answer.status_code == 200, answer.text
    return {row["region"]: row for row in answer.json()["regions"]}


def at_least(read: Callable[[], int], target: int) -> Callable[[], bool]:
    """A condition for ``wait_until``: ``read()`` has reached ``target``."""
    return lambda: read() >= target


def lines_up(api: httpx.Client, site: Site) -> int:
    lines = api.get("/api/v1/lines").json()
    return len([x for x in lines if x["gateway_id"] == site.gateway_id and x["state"] == "up"])


def caught_up(api: httpx.Client, site: Site) -> bool:
    """The center holds every seq the gateway committed, and the gateway has nothing to send."""
    return settled(api, site) is not None


def settled(api: httpx.Client, site: Site) -> tuple[int, dict[str, Any]] | None:
    """(committed, the center's row) when the watermark is the outbox's last seq, read after
    the row (a gateway commits line telemetry at any time), else None."""
    row = gateway_rows(api).get(site.gateway_id)
    committed = site.committed()
    if committed is None or row is None or row["contiguous_seq"] != committed:
        return None
    return committed, row


# --------------------------------------------------------------------- three gateways, one center


@dataclass
class Fleet:
    center: CenterService
    api: httpx.Client
    sites: list[Site]
    engine_name: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    require_tool("mosquitto")
    root = tmp_path_factory.mktemp(f"fleet-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite:///{root / 'center.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        database_url = server.create_schema(f"fleet{next(_schemas)}")
    broker = PrivateBroker(workdir=root / "broker", persistence=True).start()
    center, api = start_center(broker, database_url)
    kukar = Site(
        "kukar-01", "64.02", root / "kukar", {"unclassified": 1, "ghost": 1, "terputus": 1}
    )
    bontang = Site("bontang-01", "64.74", root / "bontang", {"unclassified": 2, "terputus": 2})
    bandung = Site(
        "bandung-e1", "32.73", root / "bandung", {"unclassified": 1, "ghost": 1, "terputus": 2}
    )
    sites = [kukar, bontang, bandung]
    urls = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    simulator = SpanSimulator(root / "bandung", urls)
    try:
        kukar.start_gsm(broker, 1, audio=True)
        bontang.start_gsm(broker, 2, audio=False, desk=True)
        bandung.start_span(broker, urls)
        for site, count in ((kukar, 1), (bontang, 2)):  # the gateway listens before calls ring
            wait_until(
                at_least(functools.partial(lines_up, api, site), count),
                PROCESS_TIMEOUT_S,
                what=f"{site.gateway_id}: its modems up, as the center sees them",
            )
        kukar.placed += [
            kukar.modems[0].place_call(call)
            for call in (speaking("+6281111111111"), silent("+6282222222222"), abandoned("0811"))
        ]
        bontang.placed += [
            bontang.modems[0].place_call(gsm_call("+6283333333333")),
            bontang.modems[0].place_call(abandoned("+6284444444444")),
            bontang.modems[1].place_call(gsm_call("+6285555555555", talk_s=0.3)),
            bontang.modems[1].place_call(abandoned(None)),
        ]
        for site in (kukar, bontang):
            for placed in site.placed:
                assert placed.wait(PROCESS_TIMEOUT_S), f"{site.gateway_id}: a call never ended"
        for site in sites:
            wait_for_site(api, site)
        yield Fleet(center, api, sites, request.param)
    finally:
        simulator.stop()  # first: its writes to the gateway's taps must not block
        for site in sites:
            site.stop()
        api.close()
        center.stop()
        broker.close()


def wait_for_site(api: httpx.Client, site: Site) -> None:
    """Until the center holds every call and every committed event of ``site``; else fail
    saying what the center and the outbox hold."""
    try:
        wait_until(
            lambda: _categories_at(api, site) == _expected(site) and caught_up(api, site),
            PROCESS_TIMEOUT_S,
            what=f"{site.gateway_id}: every call, as expected, and every committed event at "
            "the center",
        )
    except pytest.fail.Exception as failure:
        pytest.fail(f"{failure}; {site_state(api, site)}")


def site_state(api: httpx.Client, site: Site) -> str:
    """What the center and the gateway's outbox hold, for a failure message."""
    snapshot = read_outbox(site.outbox)
    outbox = (snapshot.committed, sorted(snapshot.pending)) if snapshot else None
    return (
        f"center: {region_rows(api).get(site.region)}, {gateway_rows(api).get(site.gateway_id)}; "
        f"outbox (committed, pending): {outbox}; gateway log {site.directory / 'gateway.log'}"
    )


def _total(site: Site) -> int:
    return sum(site.expected.values())


def _expected(site: Site) -> dict[str, int]:
    return {name: site.expected.get(name, 0) for name in CATEGORIES}


def _categories_at(api: httpx.Client, site: Site) -> dict[str, int]:
    """The center's calls in the site's region per category (the last call's end included:
    a call counts as soon as it is offered, as unclassified until its end is stored)."""
    row = region_rows(api).get(site.region) or {}
    return {name: int(row.get(name, 0)) for name in CATEGORIES}


def test_three_gateways_feed_one_center_exact_counts_per_region_and_category(
    fleet: Fleet,
) -> None:
    regions = region_rows(fleet.api)
    assert set(regions) == {site.region for site in fleet.sites}
    for site in fleet.sites:
        row = regions[site.region]
        assert _categories_at(fleet.api, site) == _expected(site), site.gateway_id
        assert row["calls"] == _total(site)
        assert row["abandoned"] == site.expected["terputus"]
        assert row["ghost_detected"] == site.expected.get("ghost", 0)
    assert regions["64.02"]["region_name"] == "Kabupaten Kutai Kartanegara"
    assert regions["32.73"]["region_name"] == "Kota Bandung"

    # completeness, per gateway, against the gateway's own outbox
    for site in fleet.sites:
        result = wait_until(
            functools.partial(settled, fleet.api, site), what=f"{site.gateway_id} settled"
        )
        assert result is not None
        committed, row = result
        assert committed > _total(site)
        assert (row["region"], row["status"]) == (site.region, "online")
        assert row["events"] == row["contiguous_seq"] == row["highest_seq"] == committed
        assert (row["gaps"], row["missing"], row["unsequenced"]) == ([], 0, 0)
        with fleet.center.engine.connect() as connection:
            stored = connection.execute(
                select(func.count(), func.count(func.distinct(tables.events.c.seq))).where(
                    tables.events.c.gateway_id == site.gateway_id,
                    tables.events.c.seq <= committed,
                )
            ).one()
        assert tuple(stored) == (committed, committed), "every event stored exactly once"


def test_the_dashboard_shows_the_three_regions(fleet: Fleet, tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[center]'")
    from tests.center.test_dashboard import CHROMIUM_FLAGS, cell

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(fleet.center.url or "")
            expect = sync_api.expect
            expect(page.locator("#live-status")).to_have_text("live", timeout=EXPECT_MS)
            for site in fleet.sites:
                expect(cell(page, site.region, "calls")).to_have_text(
                    str(_total(site)), timeout=EXPECT_MS
                )
                for name in ("ghost", "terputus", "unclassified"):
                    expect(cell(page, site.region, name)).to_have_text(
                        str(site.expected.get(name, 0))
                    )
            expect(page.locator("#total-calls")).to_have_text(
                str(sum(_total(site) for site in fleet.sites))
            )
            expect(page.locator("#gateways-up")).to_have_text("3 / 0")
            page.screenshot(path=str(tmp_path / "three-gateways.png"), full_page=True)
        finally:
            page.close()
            browser.close()


def annotate(site: Site, call_id: str, *options: str) -> str:
    """``edge112 annotate`` against the site's running gateway; its output."""
    assert site.process is not None
    done = subprocess.run(
        [
            *(sys.executable, "-m", "gateway.cli", "annotate", call_id),
            *options,
            *("--config", str(site.process.config)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=PROCESS_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_desk_classifies_and_escalates_at_the_gateway_and_at_the_center(
    fleet: Fleet,
) -> None:
    """A call-taker at Bontang uses the gateway's desk (``edge112 annotate``: the events go
    through its outbox to the center); one at the center classifies a Kutai Kartanegara call
    through the center's desk API. The center counts both."""
    calls = fleet.api.get("/api/v1/calls", params={"limit": 100}).json()

    def unclassified(gateway_id: str) -> str:
        return str(
            next(
                c["call_id"]
                for c in calls
                if c["gateway_id"] == gateway_id and c["category"] == "unclassified"
            )
        )

    bontang = next(site for site in fleet.sites if site.gateway_id == "bontang-01")
    at_gateway = unclassified("bontang-01")
    assert "committed" in annotate(bontang, at_gateway, "--category", "darurat")
    assert "committed" in annotate(
        bontang, at_gateway, "--escalate", "damkar", "--reference", "DMK-0001"
    )
    at_center = unclassified("kukar-01")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for kind, body in (
        ("classification", {"category": "informasi"}),
        ("escalations", {"agency": "dinkes"}),
    ):
        answer = fleet.api.post(f"/api/v1/calls/{at_center}/{kind}", json=body, headers=headers)
        assert answer.status_code == 201, answer.text

    def counted() -> dict[str, Any] | None:
        regions = region_rows(fleet.api)
        return regions if regions["64.74"]["darurat"] == 1 else None

    regions = wait_until(counted, PROCESS_TIMEOUT_S, what="the gateway's classification counted")
    assert regions is not None
    assert (regions["64.74"]["darurat"], regions["64.74"]["unclassified"]) == (1, 1)
    assert (regions["64.02"]["informasi"], regions["64.02"]["unclassified"]) == (1, 0)
    wait_until(
        lambda: region_rows(fleet.api)["64.74"]["escalations"] == 1,
        PROCESS_TIMEOUT_S,
        what="the gateway's escalation counted",
    )
    regions = region_rows(fleet.api)
    assert (regions["64.02"]["escalations"], regions["32.73"]["escalations"]) == (1, 0)
    answer = fleet.api.get("/api/v1/stats/escalations", params={"days": 2})
    assert answer.status_code == 200, answer.text
    agencies = {row["agency"]: row["escalations"] for row in answer.json()["agencies"]}
    assert agencies == {"damkar": 1, "dinkes": 1}
    for site in fleet.sites:  # the annotation events are in each gateway's sequence too
        wait_until(functools.partial(caught_up, fleet.api, site), what=f"{site.gateway_id}")
