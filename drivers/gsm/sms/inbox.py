"""The GSM driver's SMS inbox: read what the modem stored, emit it, delete it once it is committed.

Sequence, all in the line's worker thread (the reader thread only announces)::

    session start   AT+CMGL=4 in each memory in use: every message already stored
    +CMTI: "SM",3   announce -> AT+CPMS="SM" (if another memory is selected) -> AT+CMGR=3
    PDU             drivers.gsm.sms.pdu -> SmsDeliver | SmsStatusReport | PduError
                      parts -> Reassembler (complete, or partial after parts_timeout_s)
                      message -> sms.received (+ location.aml for an AML text), emitted
                      PduError -> sms.invalid (the PDU and the problem)
                      status report -> logged, deleted at once (the gateway sends no SMS)
    each tick       receipts committed? -> AT+CMGD=<index> for every location of the message
                    refused (outbox fault)? -> the message stays; read again after SMS_RETRY_S
    health poll     AT+CPMS? -> used == total: gateway.alarm sms_storage_full (once per episode)

A message is deleted from the modem only after its events are committed to
the outbox (``gateway.lines.EmitReceipt``), so a crash in between loses
nothing: the message is read again at the next start and emitted with the
same ``event_id`` (derived from the message: a UUIDv7 whose time is the
network's time stamp and whose random bits are a hash of line and message),
which consumers drop as a duplicate.

EC25: status reports are announced as ``+CDSI: "SM",<i>`` but stored in
"SR" (the dialect maps the memory). Caller numbers and texts never reach
the logs.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.gsm.dialects import GenericDialect
from drivers.gsm.responses import parse_message_header, parse_storage_usage
from drivers.gsm.sms.aml import AmlError, aml_text_of, parse_aml
from drivers.gsm.sms.concat import Location, Reassembler, SmsMessage
from drivers.gsm.sms.pdu import PduError, SmsDeliver, SmsStatusReport, decode_pdu
from gateway.events import (
    AlarmSeverity,
    Event,
    GatewayAlarm,
    LocationAml,
    SmsEncoding,
    SmsInvalid,
    SmsReceived,
    format_ts,
)
from gateway.lines import EmitReceipt
from gateway.privacy import mask_number

logger = logging.getLogger("edge112.drivers.gsm.sms")

SMS_PARTS_TIMEOUT_S = 120.0  # parts of one message come within seconds; a lost one never
SMS_RETRY_S = 30.0  # a message whose event the outbox refused is read again after this
INVALID_PDU_MAX_CHARS = 600


Command = Callable[[Any, str], list[str]]  # the driver's command(channel, "AT...")


@dataclass
class _Awaiting:
    receipts: list[EmitReceipt]
    locations: tuple[Location, ...]
    what: str


def stable_uuid7(moment: datetime, key: str) -> str:
    """A UUIDv7 (RFC 9562 layout) fixed by ``moment`` (its milliseconds) and ``key``."""
    ms = int(moment.timestamp() * 1000) & ((1 << 48) - 1)
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:10], "big")
    rand_a, rand_b = digest >> 68 & 0xFFF, digest & ((1 << 62) - 1)
    value = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SmsInbox:
    """One line's SMS handling. ``announce`` and ``storage_full_announced`` may be called from
    any thread; everything else runs in the line's worker thread."""

    def __init__(
        self,
        line: str,
        emit_for_commit: Callable[[Event], EmitReceipt],
        emit: Callable[[Event], None],
        *,
        parts_timeout_s: float = SMS_PARTS_TIMEOUT_S,
        call_for_number: Callable[[str | None], str | None] = lambda number: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self._emit_for_commit = emit_for_commit
        self._emit = emit
        self._call_for_number = call_for_number
        self._clock = clock
        self._reassembler = Reassembler(parts_timeout_s, clock)
        self._announced: collections.deque[Location] = collections.deque()
        self._announced_lock = threading.Lock()
        self._known: set[Location] = set()  # read and not yet deleted (or given up)
        self._awaiting: list[_Awaiting] = []
        self._retry: list[tuple[float, Location]] = []
        self._dialect: GenericDialect = GenericDialect()
        self._command: Command | None = None
        self._memory: str | None = None
        self._full_announced: str | None = None
        self._full_alarmed = False
        self._list_due = False
        self.deleted = 0  # messages' locations deleted so far (for health and tests)

    # Any thread -------------------------------------------------------------------

    def announce(self, memory: str, index: int, status_report: bool = False) -> None:
        with self._announced_lock:
            self._announced.append((memory, index))

    def storage_full_announced(self, memory: str) -> None:
        self._full_announced = memory

    # Worker thread ----------------------------------------------------------------

    def start_session(self, channel: object, dialect: GenericDialect, command: Command) -> None:
        """The modem was (re)set up: list what it holds (SMS set-up selected its memory)."""
        self._dialect, self._command = dialect, command
        self._memory = dialect.sms_memory
        awaiting = {location for entry in self._awaiting for location in entry.locations}
        self._known &= awaiting
        self._reassembler = Reassembler(self._reassembler.timeout_s, self._clock)
        self._list_due = True
        self.work(channel)

    def work(self, channel: object) -> None:
        """Read what was announced, hand over expired partial messages, delete what is stored."""
        if self._command is None:
            return
        if self._list_due:
            self._list_due = False
            self._list_stored(channel)
        while (location := self._next_announced()) is not None:
            self._read(channel, location)
        for message in self._reassembler.expired():
            self._emit_message(message)
        self._delete_committed(channel)
        self._retry_refused()
        if self._full_announced is not None:
            memory, self._full_announced = self._full_announced, None
            self._alarm_full(memory, None, None)

    def poll_storage(self, channel: object) -> None:
        """AT+CPMS?: a memory that is full refuses new messages (and AML with them)."""
        if self._command is None:
            return
        for line in self._command(channel, "AT+CPMS?"):
            try:
                used, total = parse_storage_usage(line)
            except ValueError:
                continue
            if total and used >= total:
                self._alarm_full(self._memory or self._dialect.sms_memory, used, total)
                self._list_due = True  # perhaps never announced: read them
            elif self._full_alarmed:
                logger.info("%s: message storage has room again (%d/%d)", self.line, used, total)
                self._full_alarmed = False
            return

    def _next_announced(self) -> Location | None:
        with self._announced_lock:
            return self._announced.popleft() if self._announced else None

    def _select(self, channel: object, memory: str) -> None:
        assert self._command is not None
        if memory != self._memory:
            self._command(channel, f'AT+CPMS="{memory}"')
            self._memory = memory

    def _memories(self) -> list[str]:
        memories = [self._dialect.sms_memory]
        for memory in self._dialect.status_report_memory.values():
            if memory not in memories:
                memories.append(memory)
        return memories

    def _list_stored(self, channel: object) -> None:
        assert self._command is not None
        for memory in self._memories():
            self._select(channel, memory)
            lines = self._command(channel, "AT+CMGL=4")
            for header_line, pdu in itertools.pairwise(lines):
                if not header_line.startswith("+CMGL:"):
                    continue
                try:
                    header = parse_message_header(header_line)
                except ValueError:
                    continue
                if header.index is not None:
                    self._take(channel, (memory, header.index), pdu)

    def _read(self, channel: object, location: Location) -> None:
        assert self._command is not None
        if location in self._known:
            return
        memory, index = location
        self._select(channel, memory)
        lines = self._command(channel, f"AT+CMGR={index}")
        for header_line, pdu in itertools.pairwise(lines):
            if header_line.startswith("+CMGR:"):
                self._take(channel, location, pdu)
                return
        logger.info("%s: no message at %s %d", self.line, memory, index)

    def _take(self, channel: object, location: Location, pdu: str) -> None:
        if location in self._known:
            return
        self._known.add(location)
        try:
            decoded = decode_pdu(pdu)
        except PduError as exc:
            logger.warning("%s: undecodable SMS at %s %d: %s", self.line, *location, exc)
            invalid = SmsInvalid(
                line=self.line,
                storage=location[0],
                index=location[1],
                pdu=pdu[:INVALID_PDU_MAX_CHARS],
                problem=str(exc),
            )
            self._await([self._emit_for_commit(invalid)], (location,), "sms.invalid")
            return
        if isinstance(decoded, SmsStatusReport):
            logger.info("%s: status report (status %d) deleted", self.line, decoded.status)
            self._delete(channel, [location])
            return
        message = self._reassembler.add(decoded, location)
        if message is not None:
            self._emit_message(message)

    def _emit_message(self, message: SmsMessage) -> None:
        first: SmsDeliver = message.first
        text = message.text
        data = message.payload if message.encoding is SmsEncoding.DATA_8BIT else None
        aml = aml_text_of(text, data)
        aml_problem, location = None, None
        if aml is not None:
            try:
                location = parse_aml(aml)
            except AmlError as exc:
                aml_problem = str(exc)
        sms = SmsReceived(
            event_id=stable_uuid7(first.timestamp, f"{self.line}|{message.fingerprint}"),
            line=self.line,
            number=message.sender or None,
            text=text,
            encoding=message.encoding,
            data_hex=data.hex() if data is not None else None,
            parts=message.parts,
            parts_missing=list(message.parts_missing),
            smsc=first.smsc,
            smsc_timestamp=first.timestamp.isoformat(),
            received_at=format_ts(datetime.now(UTC)),
            port=first.destination_port,
            aml_problem=aml_problem,
        )
        logger.info(
            "%s: SMS from %s, %d part(s)%s%s",
            self.line,
            mask_number(message.sender),
            message.parts,
            f", {len(message.parts_missing)} missing" if message.parts_missing else "",
            ", AML" if aml is not None else "",
        )
        receipts = [self._emit_for_commit(sms)]
        if location is not None:
            receipts.append(
                self._emit_for_commit(
                    LocationAml(
                        event_id=stable_uuid7(first.timestamp, f"aml|{sms.event_id}"),
                        line=self.line,
                        sms_event_id=sms.event_id,
                        call_id=self._call_for_number(message.sender),
                        number=message.sender or None,
                        latitude=location.latitude,
                        longitude=location.longitude,
                        radius_m=location.radius_m,
                        confidence_pct=location.confidence_pct,
                        positioned_at=None
                        if location.positioned_at is None
                        else format_ts(location.positioned_at),
                        method=location.method,
                        imsi=location.imsi,
                        imei=location.imei,
                        mcc=location.mcc,
                        mnc=location.mnc,
                    )
                )
            )
        self._await(receipts, message.locations, "sms.received")

    def _await(
        self, receipts: list[EmitReceipt], locations: tuple[Location, ...], what: str
    ) -> None:
        self._awaiting.append(_Awaiting(receipts, locations, what))

    def _delete_committed(self, channel: object) -> None:
        still: list[_Awaiting] = []
        for entry in self._awaiting:
            states = [receipt.committed() for receipt in entry.receipts]
            if all(state is True for state in states):
                self._delete(channel, list(entry.locations))
            elif any(state is False for state in states):
                logger.warning(
                    "%s: %s not stored by the outbox; the message stays on the modem",
                    self.line,
                    entry.what,
                )
                for location in entry.locations:
                    self._known.discard(location)
                    self._retry.append((self._clock() + SMS_RETRY_S, location))
            else:
                still.append(entry)
        self._awaiting = still

    def _delete(self, channel: object, locations: list[Location]) -> None:
        assert self._command is not None
        for memory, index in sorted(locations):
            self._select(channel, memory)
            try:
                self._command(channel, f"AT+CMGD={index}")
                self.deleted += 1
            finally:
                self._known.discard((memory, index))

    def _retry_refused(self) -> None:
        now = self._clock()
        due = [location for at, location in self._retry if at <= now]
        if due:
            self._retry = [(at, location) for at, location in self._retry if at > now]
            for location in due:
                self.announce(*location)

    def _alarm_full(self, memory: str, used: int | None, total: int | None) -> None:
        if self._full_alarmed:
            return
        self._full_alarmed = True
        logger.error("%s: message storage %s is full", self.line, memory)
        self._emit(
            GatewayAlarm(
                code="sms_storage_full",
                severity=AlarmSeverity.CRITICAL,
                message=(
                    f"line {self.line}: the modem's message storage {memory} is full; "
                    "new SMS (AML locations among them) are refused until it is emptied"
                ),
                detail={"line": self.line, "storage": memory, "used": used, "total": total},
            )
        )
