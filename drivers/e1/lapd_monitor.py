"""Passive Q.921 link tracker for a tap on both directions of a D-channel.

A tap sees every frame but acknowledges none, so it follows what the two
peers do instead of doing it::

    frames (bytes, time, direction or None) -> LapdMonitor.feed -> events
                                clock ticks -> LapdMonitor.tick -> events

    events: LapdMessage   an I or UI payload (a Q.931 message on SAPI 0), in order
            LinkChange    a data link (SAPI, TEI) came up, went down, fell silent
            TeiEvent      a TEI management message (SAPI 63) that was applied

Per data link (SAPI, TEI)::

    unknown/down --SABME--> awaiting establishment --UA--> established
                                 `--DM--> down               |  silence > T203: idle
    established --DISC--> awaiting release --UA/DM--> down   |  > T203 + N200 x T200: down
    I, RR, RNR or REJ on a link not known to be up: it came up unseen (the tap
    started late, or lost the UA); counted as an implicit establishment.

Per direction of a link, the receive state variable V(R) (the next N(S),
modulo 128). An I frame with N(S) = V(R) is delivered. One whose N(S) is up
to k behind and whose payload equals the one delivered under that N(S) is a
retransmission (after T200 or a REJ): counted, not delivered again. Behind
with a payload never seen is a late copy of a frame the tap missed:
delivered, V(R) unchanged. Behind with a different payload, or ahead (frames
the tap lost: counted as a gap), resynchronises V(R) on it. SABME resets
both directions to 0.

Directions: when the source gives none (a classic pcap), I frames and
SABME/DISC/UI/UA/DM/FRMR carry it in C/R (``LapdFrame.direction``); RR, RNR,
REJ and XID do not, and are then only used as signs of life.

Every frame not delivered is counted under its reason (``LapdCounters``).
The monitor only computes: no I/O, no clock of its own (times are the
caller's, in seconds).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from drivers.e1.lapd import (
    K_WINDOW,
    MODULUS,
    N200,
    SAPI_CALL_CONTROL,
    SAPI_MANAGEMENT,
    T200,
    T203,
    TEI_GROUP,
    Direction,
    IFrame,
    LapdError,
    LapdFrame,
    LapdProblem,
    SFrame,
    TeiManagement,
    TeiMessageType,
    UFrame,
    Unnumbered,
)

SILENCE_DOWN_S = T203 + N200 * T200  # after T203 the peers poll N200 times, T200 apart


class LinkState(StrEnum):
    UNKNOWN = "unknown"  # nothing seen yet
    AWAITING_ESTABLISHMENT = "awaiting_establishment"  # SABME seen
    ESTABLISHED = "established"
    IDLE = "idle"  # established, but silent for longer than T203
    AWAITING_RELEASE = "awaiting_release"  # DISC seen
    DOWN = "down"


UP_STATES = frozenset({LinkState.ESTABLISHED, LinkState.IDLE})
# Frames of an established link seen in these states mean it came up unseen; after a DISC
# they may still be in flight, so AWAITING_RELEASE stays until the UA or DM.
IMPLICITLY_UP_FROM = frozenset(
    {LinkState.UNKNOWN, LinkState.DOWN, LinkState.AWAITING_ESTABLISHMENT}
)


class Reason(StrEnum):
    """Why a link changed state."""

    ESTABLISHMENT_REQUESTED = "sabme"
    ESTABLISHED = "ua"
    REFUSED = "dm"
    RELEASE_REQUESTED = "disc"
    RELEASED = "released"
    IMPLICIT = "traffic_on_link_not_up"
    SILENCE = "silence"
    TRAFFIC_RESUMED = "traffic"
    TEI_REMOVED = "tei_removed"


@dataclass(frozen=True)
class LapdMessage:
    """An information field to hand to layer 3 (Q.931 on SAPI 0)."""

    time: float
    direction: Direction | None  # None only for a UI frame with no direction given
    sapi: int
    tei: int
    payload: bytes
    ns: int | None  # None for UI


@dataclass(frozen=True)
class LinkChange:
    time: float
    sapi: int
    tei: int
    previous: LinkState
    state: LinkState
    reason: Reason


@dataclass(frozen=True)
class TeiEvent:
    time: float
    direction: Direction | None
    message: TeiManagement


LapdEvent = LapdMessage | LinkChange | TeiEvent


@dataclass
class LapdCounters:
    """What the monitor saw; every frame not delivered is under one drop reason."""

    frames: int = 0
    delivered: int = 0
    malformed: Counter[LapdProblem] = field(default_factory=Counter)  # dropped
    retransmissions: int = 0  # dropped: delivered before
    other_sapi: int = 0  # dropped: I/UI on a SAPI not delivered (X.25 on 16, ...)
    empty_information: int = 0  # dropped: I frame with no payload (sequence still advanced)
    management_not_ui: int = 0  # dropped: a frame on SAPI 63 other than UI
    sequence_gaps: int = 0  # I frames the tap never saw (sum of N(S) jumps)
    sequence_resyncs: int = 0  # V(R) re-aligned on a frame behind with a new payload
    late_frames: int = 0  # delivered out of order: a missed frame seen on retransmission
    implicit_establishments: int = 0  # I/S frames on a link not known to be up
    direction_mismatches: int = 0  # C/R disagrees with the direction given by the source
    tei_messages: int = 0
    supervisory: int = 0
    unnumbered: int = 0

    @property
    def dropped(self) -> int:
        return (
            sum(self.malformed.values())
            + self.retransmissions
            + self.other_sapi
            + self.empty_information
            + self.management_not_ui
        )


@dataclass
class _Receiver:
    """One direction of one link: V(R) and the payloads recently delivered by N(S)."""

    expected: int | None = None  # None: not synchronised yet
    recent: dict[int, bytes] = field(default_factory=dict)

    def reset(self, expected: int | None) -> None:
        self.expected = expected
        self.recent.clear()

    def remember(self, ns: int, payload: bytes) -> None:
        self.recent[ns] = payload
        stale = (ns - K_WINDOW) % MODULUS
        self.recent.pop(stale, None)


@dataclass
class _Link:
    sapi: int
    tei: int
    state: LinkState = LinkState.UNKNOWN
    last_seen: float = 0.0
    receivers: dict[Direction, _Receiver] = field(
        default_factory=lambda: {direction: _Receiver() for direction in Direction}
    )


class LapdMonitor:
    """Follows every data link of one D-channel from frames of both directions."""

    def __init__(self, deliver_sapis: frozenset[int] = frozenset({SAPI_CALL_CONTROL})) -> None:
        self.deliver_sapis = deliver_sapis
        self.counters = LapdCounters()
        self.links: dict[tuple[int, int], _Link] = {}
        self.assigned_teis: dict[int, int] = {}  # TEI -> Ri of its assignment

    def link_state(self, sapi: int, tei: int) -> LinkState:
        link = self.links.get((sapi, tei))
        return link.state if link else LinkState.UNKNOWN

    # -- input ------------------------------------------------------------------------

    def feed(
        self,
        frame: bytes | bytearray | memoryview | LapdFrame,
        time: float,
        direction: Direction | None = None,
    ) -> list[LapdEvent]:
        """One frame (FCS already checked and removed) seen at ``time`` seconds."""
        self.counters.frames += 1
        if isinstance(frame, LapdFrame):
            decoded: LapdFrame = frame
        else:
            try:
                decoded = LapdFrame.from_bytes(frame)
            except LapdError as error:
                self.counters.malformed[error.problem] += 1
                return []
        inferred = decoded.direction()
        if direction is None:
            direction = inferred
        elif inferred is not None and inferred is not direction:
            self.counters.direction_mismatches += 1
        events: list[LapdEvent] = []
        if decoded.sapi == SAPI_MANAGEMENT:
            self._management(decoded, time, direction, events)
            return events
        link = self.links.get((decoded.sapi, decoded.tei))
        if link is None:
            link = self.links[decoded.sapi, decoded.tei] = _Link(decoded.sapi, decoded.tei)
        if link.state is LinkState.IDLE:
            self._change(link, time, LinkState.ESTABLISHED, Reason.TRAFFIC_RESUMED, events)
        link.last_seen = time
        match decoded:
            case IFrame():
                self._information(link, decoded, time, direction, events)
            case UFrame():
                self._unnumbered(link, decoded, time, direction, events)
            case SFrame():
                self.counters.supervisory += 1
                self._implicitly_up(link, time, events)
        return events

    def tick(self, now: float) -> list[LapdEvent]:
        """Report links silent past T203 (idle) and past T203 + N200 x T200 (down)."""
        events: list[LapdEvent] = []
        for link in self.links.values():
            if link.state not in UP_STATES:
                continue
            silent = now - link.last_seen
            if silent > SILENCE_DOWN_S:
                self._change(link, now, LinkState.DOWN, Reason.SILENCE, events)
            elif silent > T203 and link.state is LinkState.ESTABLISHED:
                self._change(link, now, LinkState.IDLE, Reason.SILENCE, events)
        return events

    # -- frame kinds ------------------------------------------------------------------

    def _information(
        self,
        link: _Link,
        frame: IFrame,
        time: float,
        direction: Direction | None,
        events: list[LapdEvent],
    ) -> None:
        assert direction is not None  # an I frame always has one (C/R of a command)
        self._implicitly_up(link, time, events)
        receiver = link.receivers[direction]
        if not self._in_sequence(receiver, frame):
            return
        if not frame.payload:
            self.counters.empty_information += 1
        elif frame.sapi not in self.deliver_sapis:
            self.counters.other_sapi += 1
        else:
            self.counters.delivered += 1
            events.append(
                LapdMessage(time, direction, frame.sapi, frame.tei, frame.payload, frame.ns)
            )

    def _implicitly_up(self, link: _Link, time: float, events: list[LapdEvent]) -> None:
        """I, RR, RNR and REJ only flow on an established link: one that was not seen
        coming up came up unseen (the tap started late, or lost the UA)."""
        if link.state not in IMPLICITLY_UP_FROM:
            return
        self.counters.implicit_establishments += 1
        if link.state is not LinkState.AWAITING_ESTABLISHMENT:  # SABME already reset them
            for receiver in link.receivers.values():
                receiver.reset(None)
        self._change(link, time, LinkState.ESTABLISHED, Reason.IMPLICIT, events)

    def _in_sequence(self, receiver: _Receiver, frame: IFrame) -> bool:
        """Advance V(R) for ``frame``; False for a retransmission (deliver it once)."""
        expected = receiver.expected
        if expected is not None and frame.ns != expected:
            behind = (expected - frame.ns) % MODULUS
            if behind <= K_WINDOW:
                seen = receiver.recent.get(frame.ns)
                if seen == frame.payload:
                    self.counters.retransmissions += 1
                    return False
                if seen is None:
                    self.counters.late_frames += 1
                    receiver.remember(frame.ns, frame.payload)
                    return True
                self.counters.sequence_resyncs += 1
                receiver.recent.clear()
            else:
                self.counters.sequence_gaps += (frame.ns - expected) % MODULUS
        receiver.expected = (frame.ns + 1) % MODULUS
        receiver.remember(frame.ns, frame.payload)
        return True

    def _unnumbered(
        self,
        link: _Link,
        frame: UFrame,
        time: float,
        direction: Direction | None,
        events: list[LapdEvent],
    ) -> None:
        self.counters.unnumbered += 1
        match frame.function:
            case Unnumbered.UI:
                if not frame.payload:
                    self.counters.empty_information += 1
                    return
                if frame.sapi not in self.deliver_sapis:
                    self.counters.other_sapi += 1
                    return
                self.counters.delivered += 1
                events.append(
                    LapdMessage(time, direction, frame.sapi, frame.tei, frame.payload, None)
                )
            case Unnumbered.SABME:
                for receiver in link.receivers.values():
                    receiver.reset(0)
                awaiting = LinkState.AWAITING_ESTABLISHMENT
                self._change(link, time, awaiting, Reason.ESTABLISHMENT_REQUESTED, events)
            case Unnumbered.DISC:
                self._change(
                    link, time, LinkState.AWAITING_RELEASE, Reason.RELEASE_REQUESTED, events
                )
            case Unnumbered.UA:
                if link.state is LinkState.AWAITING_ESTABLISHMENT:
                    self._change(link, time, LinkState.ESTABLISHED, Reason.ESTABLISHED, events)
                elif link.state is LinkState.AWAITING_RELEASE:
                    self._change(link, time, LinkState.DOWN, Reason.RELEASED, events)
            case Unnumbered.DM:
                refused = link.state is LinkState.AWAITING_ESTABLISHMENT
                reason = Reason.REFUSED if refused else Reason.RELEASED
                self._change(link, time, LinkState.DOWN, reason, events)

    def _management(
        self,
        frame: LapdFrame,
        time: float,
        direction: Direction | None,
        events: list[LapdEvent],
    ) -> None:
        if not (isinstance(frame, UFrame) and frame.function is Unnumbered.UI):
            self.counters.management_not_ui += 1
            return
        try:
            message = TeiManagement.from_bytes(frame.payload)
        except LapdError as error:
            self.counters.malformed[error.problem] += 1
            return
        self.counters.tei_messages += 1
        if message.message_type is TeiMessageType.IDENTITY_ASSIGNED:
            self.assigned_teis[message.tei] = message.reference
        elif message.message_type is TeiMessageType.IDENTITY_REMOVE:
            removed = set(self.assigned_teis) if message.tei == TEI_GROUP else {message.tei}
            for link in self.links.values():
                if link.tei in removed or message.tei == TEI_GROUP:
                    for receiver in link.receivers.values():
                        receiver.reset(None)
                    self._change(link, time, LinkState.DOWN, Reason.TEI_REMOVED, events)
            for tei in removed:
                self.assigned_teis.pop(tei, None)
        events.append(TeiEvent(time, direction, message))

    @staticmethod
    def _change(
        link: _Link, time: float, state: LinkState, reason: Reason, events: list[LapdEvent]
    ) -> None:
        if link.state is state:
            return
        events.append(LinkChange(time, link.sapi, link.tei, link.state, state, reason))
        link.state = state
