"""SMS end to end on a GSM line (issue 7 step 5): the simulated modem stores what the network
delivers, the driver reads it in PDU mode, emits sms.received / location.aml / sms.invalid into
a real outbox, and deletes each message from the SIM only once its events are committed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from drivers.simulated.sms_deliver import (
    WIB,
    aml_text,
    encode_deliver,
    encode_status_report,
    split_message,
)
from gateway.events import (
    CallAbandoned,
    CallOffered,
    Event,
    GatewayAlarm,
    LocationAml,
    PositioningMethod,
    SmsEncoding,
    SmsInvalid,
    SmsReceived,
)
from gateway.outbox import Outbox
from tests.drivers.gsm.support import EventLog, running_driver, wait_line_up

NUMBER = "+6281234567890"
SENT = datetime(2026, 12, 5, 8, 30, 15, tzinfo=WIB)


class OutboxEmit:
    """The daemon's emit in small: each event goes to a real outbox; the pending commit is
    returned, as ``gateway.daemon.Gateway.emit`` returns it. Events are also kept in ``log``."""

    def __init__(self, outbox: Outbox, log: EventLog) -> None:
        self.outbox = outbox
        self.log = log

    def __call__(self, event: Event) -> object:
        self.log(event)
        return self.outbox.submit(event)

    def stored_types(self) -> list[str]:
        reader = self.outbox.reader()
        try:
            return [row.type for row in reader.peek(1000)]
        finally:
            reader.close()

    def stored(self) -> list[dict[str, Any]]:
        reader = self.outbox.reader()
        try:
            return [json.loads(row.payload) for row in reader.peek(1000)]
        finally:
            reader.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", gateway_id="test-01", region="64.74")
    yield box
    box.close()


@contextlib.contextmanager
def sms_line(link: Path, emit: Any, **options: Any) -> Iterator[Any]:
    settings = {"signal_interval_s": 0.5, "sms_parts_timeout_s": 0.6, **options}
    with running_driver(link, emit, **settings) as driver:
        yield driver


def test_a_message_is_emitted_and_deleted_only_once_committed(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    seen_at_delete: list[list[str]] = []
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        modem.sms.on_delete = lambda memory, index: seen_at_delete.append(emit.stored_types())
        with sms_line(link, emit):
            wait_line_up(log, wait_until)
            index = modem.deliver_sms(encode_deliver(NUMBER, text="Tolong, banjir", sent_at=SENT))
            wait_until(lambda: modem.sms.deletions)
            left = modem.sms.stored_pdus()

    (sms,) = log.of(SmsReceived)
    assert (sms.number, sms.text, sms.encoding, sms.parts, sms.parts_missing) == (
        NUMBER,
        "Tolong, banjir",
        SmsEncoding.GSM7,
        1,
        [],
    )
    assert sms.smsc == "+6281100000"
    assert sms.smsc_timestamp == "2026-12-05T08:30:15+07:00"
    assert (sms.port, sms.aml_problem, sms.data_hex) == (None, None, None)
    assert [(memory, i) for memory, i, _ in modem.sms.deletions] == [("SM", index)]
    assert "sms.received" in seen_at_delete[0]  # committed before the AT+CMGD arrived
    assert left == []


def test_multipart_out_of_order_with_emoji_is_one_message(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    text = "Tolong 🚑 " * 12 + "di Jalan Pahlawan 😀 nomor 5"
    pdus = split_message(NUMBER, text, encoding="ucs2", reference=300, sixteen_bit=True)
    assert len(pdus) == 3
    with (
        SimulatedGsmModem(link, model="simcom_sim7600", chunking="byte") as modem,
        sms_line(link, emit),
    ):
        wait_line_up(log, wait_until)
        for n in (2, 0, 1):
            modem.deliver_sms(pdus[n])
        wait_until(lambda: len(modem.sms.deletions) == 3)

    (sms,) = log.of(SmsReceived)
    assert (sms.text, sms.encoding, sms.parts, sms.parts_missing) == (
        text,
        SmsEncoding.UCS2,
        3,
        [],
    )


def test_a_missing_part_is_delivered_partial_after_the_timeout(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    pdus = split_message(NUMBER, "q" * 400, reference=8)
    with SimulatedGsmModem(link, model="simcom_sim800") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(pdus[0])
        modem.deliver_sms(pdus[2])
        wait_until(lambda: log.of(SmsReceived))
        wait_until(lambda: len(modem.sms.deletions) == 2)

    (sms,) = log.of(SmsReceived)
    assert (sms.parts, sms.parts_missing) == (3, [2])
    assert sms.text == "q" * (400 - 153)


def test_messages_stored_before_the_start_are_read_at_start(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    with SimulatedGsmModem(link, model="huawei_e173") as modem:
        for n in range(3):
            modem.sms.store("SM", encode_deliver(NUMBER, text=f"pesan {n}", sent_at=SENT))
        with sms_line(link, emit):
            wait_until(lambda: len(log.of(SmsReceived)) == 3)
            wait_until(lambda: len(modem.sms.deletions) == 3)

    assert sorted(sms.text for sms in log.of(SmsReceived)) == ["pesan 0", "pesan 1", "pesan 2"]


def test_an_aml_sms_gives_a_location_linked_to_the_call(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    positioned = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        placed = modem.place_call(SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.2))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))
        text = aml_text(positioned_at=positioned)
        modem.deliver_sms(encode_deliver(NUMBER, text=text, sent_at=SENT))
        wait_until(lambda: modem.sms.deletions)

    call = log.of(CallOffered)[0]
    (sms,) = log.of(SmsReceived)
    (aml,) = log.of(LocationAml)
    assert sms.text == text and sms.aml_problem is None
    assert (aml.sms_event_id, aml.call_id, aml.number) == (sms.event_id, call.call_id, NUMBER)
    assert (aml.latitude, aml.longitude, aml.radius_m, aml.confidence_pct) == (
        -0.50213,
        117.15368,
        12.0,
        68,
    )
    assert (aml.positioned_at, aml.method) == ("2026-12-05T01:02:03.000Z", PositioningMethod.GNSS)
    assert (aml.imsi, aml.imei, aml.mcc, aml.mnc) == (
        "510101234567890",
        "3569820123456780",
        "510",
        "10",
    )


def test_aml_as_a_data_sms_with_a_port_header(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    text = aml_text()
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(encode_deliver(NUMBER, data=text.encode(), encoding="8bit", port=9200))
        wait_until(lambda: modem.sms.deletions)

    (sms,) = log.of(SmsReceived)
    assert (sms.encoding, sms.port, sms.text) == (SmsEncoding.DATA_8BIT, 9200, None)
    assert bytes.fromhex(sms.data_hex) == text.encode()
    assert log.of(LocationAml)[0].call_id is None  # no call from that number


def test_a_malformed_aml_is_still_an_sms_with_the_reason(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(encode_deliver(NUMBER, text='A"ML=1;lt=north;lg=117.1;pm=G'))
        wait_until(lambda: modem.sms.deletions)

    (sms,) = log.of(SmsReceived)
    assert sms.aml_problem == "lt='north' is not a number"
    assert log.of(LocationAml) == []


def test_a_broken_pdu_is_reported_and_the_line_goes_on(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    broken = encode_deliver(NUMBER, text="x" * 50)[:-20]
    with SimulatedGsmModem(link, model="simcom_sim800") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(broken)
        modem.deliver_sms("not hex at all")
        modem.deliver_sms(encode_deliver(NUMBER, text="masih hidup"))
        wait_until(lambda: len(modem.sms.deletions) == 3)

    invalid = log.of(SmsInvalid)
    assert sorted(i.problem.split(":")[0] for i in invalid) == [
        "not hex",
        "truncated in the user data (44 octets promised)",  # 50 septets
    ]
    assert {i.storage for i in invalid} == {"SM"}
    assert [sms.text for sms in log.of(SmsReceived)] == ["masih hidup"]


def test_an_sms_whose_event_is_not_committed_stays_and_comes_back_with_the_same_id(
    link, log, tmp_path, wait_until
):
    """A crash (here: an outbox that refuses) between read and delete loses nothing and makes
    no second event with a new id: the next start reads it again, with the same event_id."""
    refusing = Outbox(tmp_path / "refusing.db", gateway_id="test-01", region="64.74")
    refusing.close()  # submit() now resolves at once with OutboxClosed
    with SimulatedGsmModem(link, model="quectel_ec25") as modem:
        modem.deliver_sms(encode_deliver(NUMBER, text="jangan hilang", sent_at=SENT))
        first_log = EventLog()
        with sms_line(link, OutboxEmit(refusing, first_log)):
            wait_until(lambda: first_log.of(SmsReceived))
            wait_line_up(first_log, wait_until)
        assert modem.sms.deletions == []
        assert len(modem.sms.stored_pdus()) == 1

        working = Outbox(tmp_path / "outbox.db", gateway_id="test-01", region="64.74")
        try:
            emit = OutboxEmit(working, log)
            with sms_line(link, emit):
                wait_until(lambda: modem.sms.deletions)
            stored = [e for e in emit.stored() if e["type"] == "sms.received"]
        finally:
            working.close()

    assert first_log.of(SmsReceived)[0].event_id == log.of(SmsReceived)[0].event_id
    assert [e["event_id"] for e in stored] == [log.of(SmsReceived)[0].event_id]


def test_ec25_status_reports_are_read_from_sr_and_deleted(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(encode_status_report(NUMBER, reference=4), status_report=True)
        wait_until(lambda: modem.sms.deletions)

    assert [(memory, index) for memory, index, _ in modem.sms.deletions] == [("SR", 0)]
    assert modem.sms.stored_pdus("SR") == []
    assert log.of(SmsReceived) == []


def test_a_full_sim_is_reported(link, log, tmp_path, wait_until):
    refusing = Outbox(tmp_path / "refusing.db", gateway_id="test-01", region="64.74")
    refusing.close()  # nothing is committed, so nothing is deleted: the SIM fills up
    emit = OutboxEmit(refusing, log)
    with (
        SimulatedGsmModem(link, model="simcom_sim800", sim_capacity=2) as modem,
        sms_line(link, emit),
    ):
        wait_line_up(log, wait_until)
        for n in range(3):
            modem.deliver_sms(encode_deliver(NUMBER, text=f"isi {n}"))
        wait_until(lambda: log.of(GatewayAlarm))

    alarm = log.of(GatewayAlarm)[0]
    assert (alarm.code, alarm.detail["used"], alarm.detail["total"]) == ("sms_storage_full", 2, 2)
    assert modem.sms.refused == 1


def test_sms_text_never_reaches_the_logs(link, log, outbox, wait_until, caplog):
    caplog.set_level("DEBUG", logger="edge112")
    emit = OutboxEmit(outbox, log)
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(encode_deliver(NUMBER, text=aml_text()))
        wait_until(lambda: modem.sms.deletions)

    assert NUMBER[1:] not in caplog.text
    assert "510101234567890" not in caplog.text  # the IMSI inside the AML text


def test_received_at_is_recent_utc(link, log, outbox, wait_until):
    emit = OutboxEmit(outbox, log)
    with SimulatedGsmModem(link, model="quectel_ec25") as modem, sms_line(link, emit):
        wait_line_up(log, wait_until)
        modem.deliver_sms(encode_deliver(NUMBER, text="jam"))
        wait_until(lambda: log.of(SmsReceived))

    received = datetime.strptime(log.of(SmsReceived)[0].received_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(received.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=30)
