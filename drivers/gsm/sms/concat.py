"""Concatenated SMS reassembly: parts in any order -> one message, or a partial one after a timeout.

Parts belong together when sender, reference (8- or 16-bit: the two are
different references), total and encoding agree (3GPP TS 23.040
9.2.3.24.1). A part seen twice (the network resent it) is kept once; the
storage locations of both are remembered, so both are deleted. A message is
complete when every sequence number 1..total is there; one still missing a
part ``timeout_s`` after its first part arrived is handed over partial, with
the missing numbers. The payloads are joined before decoding, so a UCS2
surrogate pair (an emoji) split between two parts comes out whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.gsm.sms.pdu import SmsDeliver, decode_payload
from gateway.events import SmsEncoding

Location = tuple[str, int]  # (memory, index) in the modem's storage


@dataclass(frozen=True)
class SmsMessage:
    """A whole message (or what came of it) with every storage location it occupies."""

    sender: str
    encoding: SmsEncoding
    payload: bytes
    parts: int
    parts_missing: tuple[int, ...]
    first: SmsDeliver  # the lowest-numbered part that came (SMSC, time stamp, port)
    locations: tuple[Location, ...]
    fingerprint: str  # what identifies this message across re-reads (for the event id)

    @property
    def text(self) -> str | None:
        return decode_payload(self.encoding, self.payload)


@dataclass
class _Pending:
    started_at: float
    total: int
    parts: dict[int, SmsDeliver] = field(default_factory=dict)
    locations: list[Location] = field(default_factory=list)


class Reassembler:
    """Collects parts; thread-unsafe (the line's worker owns it)."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._pending: dict[tuple[str, int, int, int, SmsEncoding], _Pending] = {}

    def add(self, part: SmsDeliver, location: Location) -> SmsMessage | None:
        """Take one part; the whole message once it is complete, else None."""
        concatenation = part.concatenation
        if concatenation is None:
            return _message(part.sender, part.encoding, {1: part}, 1, [location])
        key = (
            part.sender,
            concatenation.reference,
            concatenation.reference_bits,
            concatenation.total,
            part.encoding,
        )
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(self._clock(), concatenation.total)
        pending.parts.setdefault(concatenation.sequence, part)
        if location not in pending.locations:
            pending.locations.append(location)
        if len(pending.parts) < pending.total:
            return None
        del self._pending[key]
        return _message(part.sender, part.encoding, pending.parts, pending.total, pending.locations)

    def expired(self) -> list[SmsMessage]:
        """Messages whose missing parts did not come within ``timeout_s``: partial."""
        now = self._clock()
        done = [key for key, p in self._pending.items() if now - p.started_at >= self.timeout_s]
        messages = []
        for key in done:
            pending = self._pending.pop(key)
            messages.append(
                _message(key[0], key[4], pending.parts, pending.total, pending.locations)
            )
        return messages

    def holds(self, location: Location) -> bool:
        """Whether a part stored at ``location`` is waiting for its siblings."""
        return any(location in pending.locations for pending in self._pending.values())

    @property
    def waiting(self) -> int:
        return len(self._pending)


def _message(
    sender: str,
    encoding: SmsEncoding,
    parts: dict[int, SmsDeliver],
    total: int,
    locations: list[Location],
) -> SmsMessage:
    present = sorted(parts)
    missing = tuple(n for n in range(1, total + 1) if n not in parts)
    first = parts[present[0]]
    concatenation = first.concatenation
    reference = (
        f"{concatenation.reference_bits}:{concatenation.reference}" if concatenation else "-"
    )
    fingerprint = "|".join(
        [sender, reference, str(total), first.timestamp.isoformat(), encoding.value]
        + [parts[n].payload.hex() for n in present]
    )
    return SmsMessage(
        sender=sender,
        encoding=encoding,
        payload=b"".join(parts[n].payload for n in present),
        parts=total,
        parts_missing=missing,
        first=first,
        locations=tuple(locations),
        fingerprint=fingerprint,
    )
