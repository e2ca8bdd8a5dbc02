"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): what a person sees.

Events reach the center through a real broker; the page must show the
numbers that were ingested, and a new call must appear without a reload
(server-sent events). Also on a phone-sized screen. Chromium missing: skipped
with the reason (failed under EDGE112_REQUIRE_TOOLS=1).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from center.service import CenterService
from center.storage import tables
from gateway.broker import PrivateBroker, free_port
from gateway.events import status_topic
from tests.center.conftest import EventFactory
from tests.center.helpers import Publisher, center_config, stored_events
from tests.conftest import PROCESS_TIMEOUT_S, require_tool, wait_until

pytestmark = pytest.mark.requires_tool("mosquitto", "chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "desk-token-0123456789"
EXPECT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[center]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=shutil.which(chromium) or chromium, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def center(broker: PrivateBroker, tmp_path: Path) -> Iterator[CenterService]:
    config = center_config(
        broker.url, f"sqlite:///{tmp_path / 'center.db'}", http=True, port=free_port(), token=TOKEN
    )
    service = CenterService(config).start()
    assert service.wait_ready(10)
    with httpx.Client(base_url=service.url or "") as client:
        wait_until(lambda: _answers(client), what="the dashboard is served")
    yield service
    service.stop()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/").status_code == 200
    except httpx.TransportError:
        return False


def publish_calls(broker: PrivateBroker, factory: EventFactory, **kinds: int) -> list[str]:
    """Publish calls (normal=, abandoned=, ghost=) through the broker; their call ids."""
    messages, call_ids = [], []
    for kind, count in kinds.items():
        for _ in range(count):
            events = factory.call(answered=kind != "abandoned", ghost=kind == "ghost")
            call_ids.append(events[0].call_id)  # type: ignore[attr-defined]
            messages += [factory.payload(event) for event in events]
    publisher = Publisher(broker.url)
    try:
        publisher.publish(messages)
        publisher.publish(
            [(status_topic(factory.region, factory.gateway_id), b"online")], retain=True
        )
        publisher.publish([factory.payload(factory.line_status("up"))])
    finally:
        publisher.close()
    return call_ids


def cell(page: Any, region: str, field: str) -> Any:
    return page.locator(f'#regions-table tr[data-region="{region}"] td[data-field="{field}"]')


def test_the_dashboard_shows_what_was_ingested_and_updates_live(
    browser: Any, broker: PrivateBroker, center: CenterService, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    bontang, kukar = EventFactory("bontang-01", "64.74"), EventFactory("kukar-01", "64.02")
    publish_calls(broker, bontang, normal=2, abandoned=1, ghost=1)
    publish_calls(broker, kukar, normal=1, abandoned=2)
    wait_until(
        lambda: stored_events(center.engine) == (8 + 2 + 4 + 1) + (4 + 4 + 1),
        PROCESS_TIMEOUT_S,
        what="every published event stored",
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(center.url or "")
        expect(page.locator("#live-status")).to_have_text("live", timeout=EXPECT_MS)
        bontang_row = page.locator('#regions-table tr[data-region="64.74"]')
        expect(bontang_row.locator("td").first).to_have_text("Kota Bontang", timeout=EXPECT_MS)
        expect(cell(page, "64.74", "calls")).to_have_text("4")
        expect(cell(page, "64.74", "terputus")).to_have_text("1")
        expect(cell(page, "64.74", "ghost")).to_have_text("1")
        expect(cell(page, "64.74", "unclassified")).to_have_text("2")
        expect(cell(page, "64.02", "calls")).to_have_text("3")
        expect(cell(page, "64.02", "terputus")).to_have_text("2")
        expect(page.locator("#total-calls")).to_have_text("7")
        expect(page.locator("#total-terputus")).to_have_text("3")
        expect(page.locator("#gateways-up")).to_have_text("2 / 0")
        expect(page.locator("#lines-up")).to_have_text("2 / 0")
        expect(
            page.locator('#gateways-table tr[data-gateway="bontang-01"] td[data-field="status"]')
        ).to_have_text("online")
        bars = page.locator('#chart rect[data-region="64.74"]')
        expect(bars).to_have_count(3)  # ghost, terputus, unclassified
        assert sorted(int(b.get_attribute("data-count") or 0) for b in bars.all()) == [1, 1, 2]
        expect(page.locator("#calls-feed li")).to_have_count(7)

        # live: a call in a third region, then the desk classifies it, no reload
        bandung = EventFactory("bandung-01", "32.73")
        (new_call,) = publish_calls(broker, bandung, normal=1)
        new_item = page.locator(f'#calls-feed li[data-call-id="{new_call}"]')
        expect(new_item).to_be_visible(timeout=EXPECT_MS)
        expect(cell(page, "32.73", "calls")).to_have_text("1", timeout=EXPECT_MS)
        expect(page.locator('#regions-table tr[data-region="32.73"] td').first).to_have_text(
            "Kota Bandung"
        )
        expect(page.locator("#total-calls")).to_have_text("8", timeout=EXPECT_MS)
        with httpx.Client(base_url=center.url or "") as client:
            answer = client.post(
                f"/api/v1/calls/{new_call}/classification",
                json={"category": "darurat"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 201, answer.text
        expect(new_item).to_have_attribute("data-category", "darurat", timeout=EXPECT_MS)
        expect(cell(page, "32.73", "darurat")).to_have_text("1", timeout=EXPECT_MS)
        expect(page.locator("#total-darurat")).to_have_text("1")
        page.screenshot(path=str(tmp_path / "dashboard-desktop.png"), full_page=True)
    finally:
        page.close()
    with center.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(tables.calls)).scalar() == 8


def test_the_dashboard_is_readable_on_a_phone(
    browser: Any, broker: PrivateBroker, center: CenterService, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    publish_calls(broker, EventFactory("bontang-01", "64.74"), normal=3, abandoned=2)
    wait_until(lambda: stored_events(center.engine) >= 3 * 4 + 2 * 2, what="calls stored")
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        page.goto(center.url or "")
        expect(cell(page, "64.74", "calls")).to_have_text("5", timeout=EXPECT_MS)
        expect(page.locator("#total-calls")).to_be_visible()
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= 390, f"the page scrolls sideways on a phone: {page_width} px wide"
        cards = page.locator(".cards .card").all()
        assert all((c.bounding_box() or {"width": 999})["width"] < 390 / 2 for c in cards)
        table_box = page.locator("#regions-table").bounding_box()
        assert table_box is not None and table_box["x"] >= 0
        page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
    finally:
        page.close()
