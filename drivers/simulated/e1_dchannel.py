"""The simulated span's D-channel: two Q.921 peers and the HDLC bit stream each one sends.

Both ends of a PRI D-channel, as the simulator plays them::

    Q.931 message ─▶ LapdLink.send_information(side) ─▶ I frame, N(S) = V(S), N(R) = V(R)
                                                      the peer's V(R) advances, it owes an ack
    next block: LapdLink.acknowledge() ─▶ RR responses for the acks still owed
    no frame for T203: the user side polls (RR command, P=1), the network answers (RR, F=1)
    start and after a line outage: SABME from the user side, UA from the network side
    (the answering frames go out a block later than what they answer)

    frame bytes ─▶ DChannelWriter.send ─▶ flag | stuffed frame + FCS | flag ─▶ TS16 octets,
                   idle flags in between   (msb-first: the first line bit is an octet's MSB)

``DChannelWriter`` is a 64 kbit/s transmitter: frames queue and go out at
line rate, flags fill the rest. Idle flags cost nothing (a stream of flags
shifted by k bits is one repeated octet), so an idle span is cheap to
simulate. Faults it can put on the line: a damaged first copy of a frame (bad
FCS, or aborted after half its bits with seven 1s) followed at once by the
good copy, as a peer's retransmission would be.

TEI 0 and SAPI 0 throughout: a PRI has one data link, call control.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cython_ext.reference.crc16 import crc16_x25
from cython_ext.reference.hdlc import stuff
from drivers.e1.lapd import (
    MODULUS,
    SAPI_CALL_CONTROL,
    T203,
    Direction,
    IFrame,
    LapdFrame,
    SFrame,
    Supervisory,
    UFrame,
    Unnumbered,
    cr_bit,
)

FLAG_BITS = (0, 1, 1, 1, 1, 1, 1, 0)
FLAG_OCTET = 0x7E
ABORT_BITS = (1,) * 7
PRI_TEI = 0


class FrameDamage(StrEnum):
    """How a damaged copy of a frame goes on the line before the good one."""

    BAD_FCS = "bad_fcs"  # both FCS octets inverted
    ABORT = "abort"  # half the frame, then seven 1s


class DChannelWriter:
    """One direction's TS16: frames in, HDLC line octets out at 8000 a second."""

    def __init__(self) -> None:
        self._ready = bytearray()  # whole line octets not yet handed out
        self._carry = 0  # line bits after the last whole octet, first bit highest
        self._carry_bits = 0
        self.frames_sent: list[bytes] = []  # good frames queued since the last take_frames()
        self.damaged = 0  # damaged copies put on the line

    def send(self, frame: bytes, damage: FrameDamage | None = None) -> None:
        """Queue ``frame`` (address, control, information); a damaged copy first if asked."""
        body = bytes(frame)
        fcs = crc16_x25(body).to_bytes(2, "little")
        if damage is not None:
            self.damaged += 1
            stuffed = stuff(body + bytes(octet ^ 0xFF for octet in fcs))
            if damage is FrameDamage.ABORT:
                stuffed = stuffed[: len(stuffed) // 2] + list(ABORT_BITS)
                self._push((*FLAG_BITS, *stuffed))
            else:
                self._push((*FLAG_BITS, *stuffed, *FLAG_BITS))
        self._push((*FLAG_BITS, *stuff(body + fcs), *FLAG_BITS))
        self.frames_sent.append(body)

    @property
    def backlog_octets(self) -> int:
        """Octets queued and not yet on the line."""
        return len(self._ready)

    def take(self, count: int) -> bytes:
        """The next ``count`` line octets: queued frames first, then idle flags."""
        if len(self._ready) < count:
            self._idle(count - len(self._ready))
        out = bytes(self._ready[:count])
        del self._ready[:count]
        return out

    def take_frames(self) -> list[bytes]:
        """The good frames queued since the last call (for a ``lapd`` stream)."""
        frames, self.frames_sent = self.frames_sent, []
        return frames

    def _push(self, bits: tuple[int, ...] | list[int]) -> None:
        carry, count = self._carry, self._carry_bits
        ready = self._ready
        for bit in bits:
            carry = (carry << 1) | bit
            count += 1
            if count == 8:
                ready.append(carry)
                carry, count = 0, 0
        self._carry, self._carry_bits = carry, count

    def _idle(self, count: int) -> None:
        """``count`` octets of flags continuing the bit stream where it is."""
        k = self._carry_bits
        if k == 0:
            self._ready += bytes((FLAG_OCTET,)) * count
            return
        first = ((self._carry << (8 - k)) | (FLAG_OCTET >> k)) & 0xFF
        rotated = ((FLAG_OCTET << (8 - k)) | (FLAG_OCTET >> k)) & 0xFF
        self._ready.append(first)
        self._ready += bytes((rotated,)) * (count - 1)
        self._carry = FLAG_OCTET & ((1 << k) - 1)


@dataclass
class LapdPeer:
    """One end of the data link: what it has sent and received, whether it owes an ack."""

    direction: Direction  # what this peer sends
    writer: DChannelWriter = field(default_factory=DChannelWriter)
    send_state: int = 0  # V(S)
    receive_state: int = 0  # V(R)
    ack_owed: bool = False
    ack_owed_since: float = 0.0  # when the first unacknowledged I frame was received
    damage_next: list[FrameDamage] = field(default_factory=list)  # faults for the next frames
    retransmit_next: int = 0  # I frames to send twice (the copy after T200)

    def put(self, frame: LapdFrame) -> None:
        damage = self.damage_next.pop(0) if self.damage_next else None
        self.writer.send(frame.to_bytes(), damage)


class LapdLink:
    """The two peers of one D-channel and the Q.921 procedures the simulator plays."""

    def __init__(self) -> None:
        self.network = LapdPeer(Direction.NETWORK_TO_USER)
        self.user = LapdPeer(Direction.USER_TO_NETWORK)
        self.established = False
        self.last_frame_at = 0.0
        self.information_frames = 0
        self.retransmissions = 0

    def peer(self, direction: Direction) -> LapdPeer:
        return self.network if direction is Direction.NETWORK_TO_USER else self.user

    def other(self, peer: LapdPeer) -> LapdPeer:
        return self.user if peer is self.network else self.network

    def request_establishment(self, now: float) -> None:
        """SABME from the user side: both sequences start again at 0."""
        for peer in (self.network, self.user):
            peer.send_state = peer.receive_state = 0
            peer.ack_owed = False
        user = self.user
        user.put(UFrame(SAPI_CALL_CONTROL, _cr(user, True), PRI_TEI, Unnumbered.SABME, True))
        self.last_frame_at = now

    def confirm_establishment(self, now: float) -> None:
        """UA from the network side: the link is up."""
        network = self.network
        network.put(UFrame(SAPI_CALL_CONTROL, _cr(network, False), PRI_TEI, Unnumbered.UA, True))
        self.established = True
        self.last_frame_at = now

    def request_release(self, now: float) -> None:
        """DISC from the user side: no more I frames."""
        user = self.user
        user.put(UFrame(SAPI_CALL_CONTROL, _cr(user, True), PRI_TEI, Unnumbered.DISC, True))
        self.established = False
        self.last_frame_at = now

    def confirm_release(self, now: float) -> None:
        """UA from the network side: the link is down."""
        network = self.network
        network.put(UFrame(SAPI_CALL_CONTROL, _cr(network, False), PRI_TEI, Unnumbered.UA, True))
        self.last_frame_at = now

    def send_information(self, direction: Direction, payload: bytes, now: float) -> IFrame:
        """An I frame carrying ``payload`` (acknowledging what the sender has received)."""
        sender = self.peer(direction)
        receiver = self.other(sender)
        frame = IFrame(
            SAPI_CALL_CONTROL,
            _cr(sender, True),
            PRI_TEI,
            sender.send_state,
            sender.receive_state,
            False,
            payload,
        )
        sender.put(frame)
        sender.send_state = (sender.send_state + 1) % MODULUS
        sender.ack_owed = False  # N(R) in the I frame acknowledged the peer
        receiver.receive_state = (receiver.receive_state + 1) % MODULUS
        if not receiver.ack_owed:
            receiver.ack_owed, receiver.ack_owed_since = True, now
        self.information_frames += 1
        self.last_frame_at = now
        return frame

    def resend(self, direction: Direction, frame: IFrame, now: float) -> None:
        """A retransmission after T200: the same N(S) and information, P = 1."""
        copy = IFrame(frame.sapi, frame.cr, frame.tei, frame.ns, frame.nr, True, frame.payload)
        self.peer(direction).put(copy)
        self.retransmissions += 1
        self.last_frame_at = now

    def acknowledge(self, now: float) -> None:
        """RR responses for acks owed since before ``now`` (an I frame is acknowledged after it
        was received, not beside it); the keep-alive poll after T203 of silence."""
        if not self.established:
            return
        for peer in (self.network, self.user):
            if peer.ack_owed and peer.ack_owed_since < now:
                peer.put(
                    SFrame(
                        SAPI_CALL_CONTROL,
                        _cr(peer, False),
                        PRI_TEI,
                        Supervisory.RR,
                        peer.receive_state,
                    )
                )
                peer.ack_owed = False
                self.last_frame_at = now
        if now - self.last_frame_at >= T203:
            user, network = self.user, self.network
            user.put(
                SFrame(
                    SAPI_CALL_CONTROL,
                    _cr(user, True),
                    PRI_TEI,
                    Supervisory.RR,
                    user.receive_state,
                    True,
                )
            )
            network.put(
                SFrame(
                    SAPI_CALL_CONTROL,
                    _cr(network, False),
                    PRI_TEI,
                    Supervisory.RR,
                    network.receive_state,
                    True,
                )
            )
            self.last_frame_at = now


def _cr(peer: LapdPeer, command: bool) -> int:
    return cr_bit(peer.direction, command=command)
