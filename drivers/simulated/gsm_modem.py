"""A virtual GSM modem on a pseudo-terminal, shipped with the product.

``SimulatedGsmModem`` opens a PTY, links a path of your choice to its slave
side (``/tmp/edge112/gsm0 -> /dev/pts/7``) and answers AT commands there the
way a real modem of the chosen model does, so the gateway, a technician's
terminal program or a benchmark can talk to it exactly as to hardware::

    gateway (pyserial) <-> /dev/pts/N (raw) <-> PTY master <-> SimulatedGsmModem
                                                   |- command thread: AT in, replies out
                                                   '- call thread: RING/+CLIP, call ends
    gateway (pyserial) <-> /dev/pts/M (raw) <-> PTY master <-> voice thread (with audio_link)
                                                      8 kHz PCM16, 320 bytes every 20 ms

Models (``MODELS``) reproduce the shapes that differ between vendors: the
identity, the reply to an unknown command (EC25 ``ERROR``, Huawei ``COMMAND
NOT SUPPORT``), the ``+CLIP`` layout, the SIM7600 ``\\r\\r\\n`` URC framing,
how a call ends (``NO CARRIER``; SIM7600 ``VOICE CALL: END`` and
``MISSED_CALL``; Huawei ``^CEND``), the EC25 data session listed by
``AT+CLCC`` as a mode 1 record, Huawei's periodic ``^RSSI``, and the command
that switches call audio on (EC25 ``AT+QPCMV=1,0``, kept until ``AT+QPCMV=0``;
SIM7600 ``AT+CPCMREG=1`` and Huawei ``AT^DDSETEX=2``, forgotten when the call
ends; the SIM800 has none). Echo is on until ``ATE0``, as on real modems.

Call audio (``audio_link``): once a call is answered, the caller follows
the call's ``audio`` script (``drivers.simulated.caller_audio``) in real
time, and the voice thread (``drivers.simulated.voice_port``) writes it to
the second PTY while audio is switched on; what the gateway writes there,
the caller hears, and a caller with ``respond_to_prompt`` presses those
digits after hearing 1 s of it. ``PlacedCall.audio_log`` records both ways.

Calls are placed one at a time (a queue holds the rest): RING or
``+CRING: VOICE`` every ``ring_interval_s``, each followed by ``+CLIP`` once
``AT+CLIP=1`` is set, until ``ATA``, ``ATH`` or the caller gives up. Each
``PlacedCall`` records when its first RING went out (``time.time()`` and
``time.monotonic()``) and how it ended, for tests and benchmarks to compare
with what the gateway published.

Fault injection: ``chunking`` splits every write (``line``: as composed,
``byte``: one byte per write, ``random``: random pieces, seeded), ``inject``
writes arbitrary bytes (garbage, half lines, over-long lines),
``vanish`` closes the PTYs as an unplugged USB modem would, and
``vanish_audio`` closes the audio PTY alone.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import re
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from drivers.simulated.caller_audio import AudioLog, AudioSegment, CallerVoice, check_digits
from drivers.simulated.links import open_linked_pty, remove_link
from drivers.simulated.voice_port import SimulatedVoicePort
from gateway.events import Presentation

logger = logging.getLogger("edge112.drivers.simulated")

RING_INTERVAL_S = 5.0  # real networks alert about every 5 s
TALK_S = 10.0
NETWORK_NO_ANSWER_RINGS = 12  # the network gives up on an unanswered call after about a minute
DEFAULT_RSSI = 20  # AT+CSQ 20 = -73 dBm
BYTE_GAP_S = 0.0002  # between single-byte writes, about 2 bytes' time at 115200 baud
RANDOM_PIECE_MAX_BYTES = 16
RANDOM_GAP_MAX_S = 0.002
WRITE_STALL_S = 0.5  # nobody reads the port: drop output after this long, as a UART would
BOOT_DELAY_S = 0.2  # from AT+CFUN=1,1 to the first boot URC
PERIODIC_URC_S = 3.0
POLL_S = 0.1
MAX_COMMAND_BYTES = 512


class Chunking(StrEnum):
    LINE = "line"
    BYTE = "byte"
    RANDOM = "random"


class CallEndStyle(Enum):
    NO_CARRIER = "no_carrier"  # 3GPP: NO CARRIER
    SIMCOM = "simcom"  # VOICE CALL: END: <hhmmss> / MISSED_CALL: <time> <number>
    HUAWEI = "huawei"  # ^CEND:<id>,<duration>,<end status>,<cc cause>


class ClipShape(Enum):
    FULL = "full"  # +CLIP: "<n>",145,"",0,"",0  (SIM800, EC25, SIM7600)
    HUAWEI = "huawei"  # +CLIP: "<n>",145,,,,0


class CallOutcome(StrEnum):
    ANSWERED = "answered"  # the gateway answered (ATA)
    ABANDONED = "abandoned"  # the caller (or the network) gave up before an answer
    REJECTED = "rejected"  # the gateway hung up before answering
    LOST = "lost"  # the modem vanished, closed or rebooted during the call
    CANCELLED = "cancelled"  # queued, never rang


@dataclass(frozen=True)
class ModemModel:
    key: str
    manufacturer: str
    model: str
    revision: str
    ati_lines: tuple[str, ...]  # "{imei}" is filled in
    operator_line: str
    unknown_command_reply: str = "ERROR"
    urc_frame: tuple[bytes, bytes] = (b"\r\n", b"\r\n")
    clip_shape: ClipShape = ClipShape.FULL
    call_end_style: CallEndStyle = CallEndStyle.NO_CARRIER
    lists_data_session: bool = False
    answer_urc: str | None = None  # sent after the OK to ATA
    extra_commands: frozenset[str] = frozenset()  # answered with a plain OK
    supports_cereg: bool = False
    boot_lines: tuple[str, ...] = ()
    periodic_urc: str | None = None  # "{rssi}" is filled in
    audio_on_command: str | None = None  # switches call audio on (answered OK)
    audio_off_command: str | None = None
    audio_per_call: bool = False  # True: audio switches itself off when a call ends


MODELS: dict[str, ModemModel] = {
    "quectel_ec25": ModemModel(
        key="quectel_ec25",
        manufacturer="Quectel",
        model="EC25",
        revision="EC25EFAR06A06M4G",
        ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A06M4G"),
        operator_line='+COPS: 0,0,"Telkomsel",7',
        lists_data_session=True,
        extra_commands=frozenset({"AT+CVHU=0"}),
        supports_cereg=True,
        boot_lines=("RDY", "+CFUN: 1", "+CPIN: READY", "+QIND: SMS DONE", "+QIND: PB DONE"),
        audio_on_command="AT+QPCMV=1,0",
        audio_off_command="AT+QPCMV=0",
    ),
    "simcom_sim7600": ModemModel(
        key="simcom_sim7600",
        manufacturer="SIMCOM INCORPORATED",
        model="SIMCOM_SIM7600E-H",
        revision="LE20B04SIM7600M22",
        ati_lines=(
            "Manufacturer: SIMCOM INCORPORATED",
            "Model: SIMCOM_SIM7600E-H",
            "Revision: LE20B04SIM7600M22",
            "IMEI: {imei}",
            "+GCAP: +CGSM",
        ),
        operator_line='+COPS: 0,0,"Telkomsel",7',
        urc_frame=(b"\r\r\n", b"\r\r\n"),
        call_end_style=CallEndStyle.SIMCOM,
        answer_urc="VOICE CALL: BEGIN",
        extra_commands=frozenset({"AT+CVHU=0"}),
        supports_cereg=True,
        boot_lines=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
        audio_on_command="AT+CPCMREG=1",
        audio_off_command="AT+CPCMREG=0",
        audio_per_call=True,
    ),
    "simcom_sim800": ModemModel(
        key="simcom_sim800",
        manufacturer="SIMCOM_Ltd",
        model="SIMCOM_SIM800L",
        revision="Revision:1418B04SIM800L24",
        ati_lines=("SIM800 R14.18",),
        operator_line='+COPS: 0,0,"TELKOMSEL"',
        extra_commands=frozenset({"AT+CVHU=0"}),
        boot_lines=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    ),
    "huawei_e173": ModemModel(
        key="huawei_e173",
        manufacturer="huawei",
        model="E173",
        revision="11.126.85.00.209",
        ati_lines=(
            "Manufacturer: huawei",
            "Model: E173",
            "Revision: 11.126.85.00.209",
            "IMEI: {imei}",
            "+GCAP: +CGSM,+DS,+ES",
        ),
        operator_line='+COPS: 0,0,"TELKOMSEL",0',
        unknown_command_reply="COMMAND NOT SUPPORT",
        clip_shape=ClipShape.HUAWEI,
        call_end_style=CallEndStyle.HUAWEI,
        answer_urc="^CONN:1,0",
        boot_lines=("^SIMST:1",),
        periodic_urc="^RSSI:{rssi}",
        audio_on_command="AT^DDSETEX=2",
        audio_per_call=True,
    ),
}


@dataclass(frozen=True)
class SimulatedCall:
    """An incoming call as the caller makes it.

    ``presentation`` defaults to ALLOWED with a number, UNAVAILABLE without
    (no ``+CLIP`` at all, like a SIM-less 112 call); RESTRICTED sends a
    ``+CLIP`` with an empty number. ``hangup_after_rings``: the caller gives
    up after that many rings if nobody answered (None: waits for an answer,
    until the network gives up). ``talk_s``: after an answer the caller
    talks this long, then hangs up. ``announce_end=False`` is a fault: the
    modem prints nothing when the caller hangs up (a lost or garbled URC), so
    only ``AT+CLCC`` shows the call is gone.

    ``audio``: what the caller does after the answer (``AudioSegment.speech``,
    ``.silence``, ``.noise``, ``.dtmf``, ``.wav``), then silence until
    ``talk_s`` ends. ``respond_to_prompt``: digits the caller presses once
    they have heard 1 s of non-silent audio from the gateway.
    """

    number: str | None = None
    presentation: Presentation | None = None
    hangup_after_rings: int | None = None
    talk_s: float = TALK_S
    ring_interval_s: float = RING_INTERVAL_S
    announce_end: bool = True
    audio: tuple[AudioSegment, ...] = ()
    respond_to_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.presentation is None:
            derived = Presentation.ALLOWED if self.number else Presentation.UNAVAILABLE
            object.__setattr__(self, "presentation", derived)
        if self.presentation is Presentation.ALLOWED and not self.number:
            raise ValueError("presentation 'allowed' needs a number")
        if self.presentation is not Presentation.ALLOWED and self.number:
            raise ValueError(f"presentation '{self.presentation}' must not have a number")
        if self.hangup_after_rings is not None and self.hangup_after_rings < 1:
            raise ValueError("hangup_after_rings must be at least 1")
        if self.talk_s < 0 or self.ring_interval_s <= 0:
            raise ValueError("talk_s must be >= 0 and ring_interval_s > 0")
        object.__setattr__(self, "audio", tuple(self.audio))
        if not all(isinstance(segment, AudioSegment) for segment in self.audio):
            raise ValueError("audio must be AudioSegments")
        if self.respond_to_prompt is not None:
            check_digits(self.respond_to_prompt)

    @property
    def shown_presentation(self) -> Presentation:
        return self.presentation or Presentation.UNAVAILABLE


@dataclass
class PlacedCall:
    """A call handed to the modem, filled in as it happens."""

    sequence: int
    spec: SimulatedCall
    rings: int = 0
    first_ring_wall: float | None = None  # time.time() just before the first RING was written
    first_ring_monotonic: float | None = None
    answered_monotonic: float | None = None
    ended_monotonic: float | None = None
    outcome: CallOutcome | None = None
    audio_log: AudioLog = field(default_factory=AudioLog)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the call is over; False on timeout."""
        return self._done.wait(timeout)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record of the call (the simulator CLI prints one per line)."""

        def since_first_ring(moment: float | None) -> float | None:
            if moment is None or self.first_ring_monotonic is None:
                return None
            return round(moment - self.first_ring_monotonic, 3)

        return {
            "call": self.sequence,
            "number": self.spec.number,
            "presentation": self.spec.shown_presentation.value,
            "first_ring_wall": self.first_ring_wall,
            "first_ring_monotonic": self.first_ring_monotonic,
            "rings": self.rings,
            "outcome": self.outcome.value if self.outcome else None,
            "answered_after_s": since_first_ring(self.answered_monotonic),
            "ended_after_s": since_first_ring(self.ended_monotonic),
            "pressed_after_s": since_first_ring(self.audio_log.pressed_monotonic),
            **self.audio_log.summary(),
        }

    def _finish(self, outcome: CallOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
        if self.ended_monotonic is None:
            self.ended_monotonic = time.monotonic()
        self._done.set()


@dataclass
class _LiveCall:
    placed: PlacedCall
    answered: bool = False
    outcome: CallOutcome | None = None
    voice: CallerVoice | None = None  # from the answer on
    changed: threading.Event = field(default_factory=threading.Event)  # answered or over
    over: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Reply:
    lines: list[str]
    final: str
    urcs_after: list[str] = field(default_factory=list)


class SimulatedGsmModem:
    """A modem of ``model`` behind the pseudo-terminal linked at ``link``.

    With ``audio_link``, a second pseudo-terminal linked there carries call audio.
    """

    def __init__(
        self,
        link: str | Path,
        *,
        model: str = "quectel_ec25",
        chunking: str = "line",
        seed: int | None = None,
        rssi: int = DEFAULT_RSSI,
        audio_link: str | Path | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
        self.model = MODELS[model]
        self.chunking = Chunking(chunking)
        self.rssi = rssi
        self._rng = random.Random(seed)
        self.imei = _make_imei(self._rng)
        self._lock = threading.RLock()  # modem state and every write
        self._stopped = threading.Event()
        self._calls: queue.Queue[PlacedCall] = queue.Queue()
        self._live: _LiveCall | None = None
        self._sequence = 0
        self._reset_settings()
        self._master, self._slave, self.device, self.link = open_linked_pty(link)
        try:
            self._voice_port = self._open_voice_port(audio_link)
        except OSError:
            remove_link(self.link, self.device)
            os.close(self._master)
            os.close(self._slave)
            raise
        self._threads = [
            threading.Thread(target=self._serve_commands, name="edge112-sim-at", daemon=True),
            threading.Thread(target=self._run_calls, name="edge112-sim-calls", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("simulated %s on %s -> %s", self.model.key, self.link, self.device)

    def __enter__(self) -> SimulatedGsmModem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._stopped.is_set()

    @property
    def audio_link(self) -> Path | None:
        return self._voice_port.link if self._voice_port else None

    @property
    def audio_device(self) -> str | None:
        return self._voice_port.device if self._voice_port else None

    def place_call(self, spec: SimulatedCall) -> PlacedCall:
        """Queue an incoming call; it rings as soon as the previous one is over."""
        with self._lock:
            self._sequence += 1
            placed = PlacedCall(self._sequence, spec)
            if self._stopped.is_set():
                placed._finish(CallOutcome.CANCELLED)
            else:
                self._calls.put(placed)
        return placed

    def inject(self, raw: bytes) -> None:
        """Write ``raw`` to the port as is (subject to chunking)."""
        with self._lock:
            self._write(raw)

    def vanish(self) -> None:
        """Close the PTYs as an unplugged USB modem: reads on the ports fail from now on."""
        self._shut_down("vanished")

    def vanish_audio(self) -> None:
        """Close the audio PTY alone; calls and AT commands go on without audio."""
        if self._voice_port is not None:
            self._voice_port.close()

    def close(self) -> None:
        self._shut_down("closed")

    # Lifecycle -------------------------------------------------------------

    def _open_voice_port(self, audio_link: str | Path | None) -> SimulatedVoicePort | None:
        if audio_link is None:
            return None
        return SimulatedVoicePort(
            audio_link, self._call_audio_state, name=f"simulated {self.model.key} audio"
        )

    def _call_audio_state(self) -> tuple[CallerVoice, bool] | None:
        """The answered call's caller and whether audio is on; None without one."""
        with self._lock:
            live = self._live
            if live is None or live.outcome is not None or live.voice is None:
                return None
            return live.voice, self._audio_on

    def _reset_settings(self) -> None:
        self._echo = True
        self._cmee = 0
        self._clip = False
        self._crc = False
        self._audio_on = False

    def _shut_down(self, why: str) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            self._end_live_call(CallOutcome.LOST)
        if self._voice_port is not None:
            self._voice_port.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(1.0)
        with self._lock:
            self._cancel_queued()
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        remove_link(self.link, self.device)
        logger.info("simulated %s on %s %s", self.model.key, self.link, why)

    def cancel_queued(self) -> None:
        """Drop the calls waiting their turn (outcome CANCELLED); a call in progress goes on."""
        self._cancel_queued()

    def _cancel_queued(self) -> None:
        while True:
            try:
                self._calls.get_nowait()._finish(CallOutcome.CANCELLED)
            except queue.Empty:
                return

    def _end_live_call(self, outcome: CallOutcome) -> None:
        live = self._live
        if live is not None and live.outcome is None:
            live.outcome = outcome
            live.placed.ended_monotonic = time.monotonic()
            live.changed.set()
            live.over.set()
        if self.model.audio_per_call:
            self._audio_on = False

    # Writing ---------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Write under the lock, split as ``chunking`` says; dropped once closed."""
        for piece, gap_s in self._pieces(data):
            if self._master < 0 or not self._write_all(piece):
                return
            if gap_s:
                time.sleep(gap_s)

    def _pieces(self, data: bytes) -> list[tuple[bytes, float]]:
        if self.chunking is Chunking.LINE:
            return [(data, 0.0)]
        if self.chunking is Chunking.BYTE:
            return [(data[i : i + 1], BYTE_GAP_S) for i in range(len(data))]
        pieces = []
        start = 0
        while start < len(data):
            size = self._rng.randint(1, RANDOM_PIECE_MAX_BYTES)
            pieces.append((data[start : start + size], self._rng.uniform(0, RANDOM_GAP_MAX_S)))
            start += size
        return pieces

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                _, writable, _ = select.select([], [self._master], [], WRITE_STALL_S)
                if not writable:
                    logger.warning("simulated %s: nobody reads; output dropped", self.model.key)
                    return False
                continue
            except OSError as exc:
                logger.debug("simulated %s: write failed: %s", self.model.key, exc)
                return False
            view = view[written:]
        return True

    def _write_urcs(self, lines: list[str]) -> None:
        before, after = self.model.urc_frame
        self._write(b"".join(before + line.encode() + after for line in lines))

    def _write_reply(self, echo: str | None, reply: _Reply) -> None:
        out = [echo.encode() + b"\r"] if echo is not None else []
        out += [b"\r\n" + line.encode() + b"\r\n" for line in [*reply.lines, reply.final]]
        self._write(b"".join(out))
        if reply.urcs_after:
            self._write_urcs(reply.urcs_after)

    # Command thread --------------------------------------------------------

    def _serve_commands(self) -> None:
        pending = bytearray()
        next_periodic_at = time.monotonic() + PERIODIC_URC_S
        while not self._stopped.is_set():
            readable, _, _ = select.select([self._master], [], [], POLL_S)
            if readable:
                try:
                    pending += os.read(self._master, 4096)
                except OSError:
                    continue  # EIO while no slave side is open
                pending = self._take_commands(pending)
            if self.model.periodic_urc and time.monotonic() >= next_periodic_at:
                next_periodic_at = time.monotonic() + PERIODIC_URC_S
                with self._lock:
                    self._write_urcs([self.model.periodic_urc.format(rssi=self.rssi)])

    def _take_commands(self, pending: bytearray) -> bytearray:
        *commands, rest = pending.split(b"\r")
        for raw in commands:
            command = raw.replace(b"\n", b"").decode("ascii", "replace").strip()
            if command.upper().startswith("AT"):
                with self._lock:
                    echo = self._echo  # a modem echoes as it receives, before it executes
                    self._write_reply(command if echo else None, self._respond(command))
        return rest if len(rest) <= MAX_COMMAND_BYTES else bytearray()

    def _respond(self, command: str) -> _Reply:
        upper = command.upper()
        fixed = self._fixed_replies().get(upper)
        if fixed is not None:
            return _Reply(fixed, "OK")
        for pattern, handler in self._handlers():
            match = pattern.fullmatch(upper)
            if match:
                return handler(match)
        if upper in self.model.extra_commands:
            return _Reply([], "OK")
        if upper in (self.model.audio_on_command, self.model.audio_off_command):
            self._audio_on = upper == self.model.audio_on_command
            return _Reply([], "OK")
        return _Reply([], self.model.unknown_command_reply)

    def _fixed_replies(self) -> dict[str, list[str]]:
        model = self.model
        replies = {
            "AT": [],
            "ATI": [line.format(imei=self.imei) for line in model.ati_lines],
            "AT+CGMI": [model.manufacturer],
            "AT+GMI": [model.manufacturer],
            "AT+CGMM": [model.model],
            "AT+GMM": [model.model],
            "AT+CGMR": [model.revision],
            "AT+CGSN": [self.imei],
            "AT+GSN": [self.imei],
            "AT+CSQ": [f"+CSQ: {self.rssi},99"],
            "AT+CREG?": ["+CREG: 0,1"],
            "AT+COPS?": [model.operator_line],
            "AT+CPIN?": ["+CPIN: READY"],
            "AT+CFUN?": ["+CFUN: 1"],
            "AT+CMEE?": [f"+CMEE: {self._cmee}"],
            "AT+CLIP?": [f"+CLIP: {int(self._clip)},1"],
            "AT+CRC?": [f"+CRC: {int(self._crc)}"],
            "AT+CLCC": self._clcc_lines(),
        }
        if model.supports_cereg:
            replies["AT+CEREG?"] = ["+CEREG: 0,1"]
        return replies

    def _handlers(self) -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], _Reply]]]:
        return [
            (_ECHO, self._set_echo),
            (_CMEE, self._set_cmee),
            (_CLIP, self._set_clip),
            (_CRC, self._set_crc),
            (_ANSWER, self._answer),
            (_HANG_UP, self._hang_up),
            (_REBOOT, self._reboot),
        ]

    def _set_echo(self, match: re.Match[str]) -> _Reply:
        self._echo = match.group(1) == "1"
        return _Reply([], "OK")

    def _set_cmee(self, match: re.Match[str]) -> _Reply:
        self._cmee = int(match.group(1))
        return _Reply([], "OK")

    def _set_clip(self, match: re.Match[str]) -> _Reply:
        self._clip = match.group(1) == "1"
        return _Reply([], "OK")

    def _set_crc(self, match: re.Match[str]) -> _Reply:
        self._crc = match.group(1) == "1"
        return _Reply([], "OK")

    def _answer(self, _match: re.Match[str]) -> _Reply:
        live = self._live
        if live is None or live.outcome is not None or live.placed.rings == 0:
            return _Reply([], "NO CARRIER")
        if not live.answered:
            live.answered = True
            live.placed.answered_monotonic = answered = time.monotonic()
            spec = live.placed.spec
            live.voice = CallerVoice(
                spec.audio, spec.respond_to_prompt, live.placed.audio_log, answered
            )
            live.changed.set()
        return _Reply([], "OK", [self.model.answer_urc] if self.model.answer_urc else [])

    def _hang_up(self, _match: re.Match[str]) -> _Reply:
        live = self._live
        if live is None or live.outcome is not None:
            return _Reply([], "OK")
        ending = self._call_end_lines(live) if live.answered else []
        outcome = CallOutcome.ANSWERED if live.answered else CallOutcome.REJECTED
        self._end_live_call(outcome)
        if self.model.call_end_style is CallEndStyle.SIMCOM:
            return _Reply(ending, "OK")  # SIM7600: VOICE CALL: END comes before the OK
        if self.model.call_end_style is CallEndStyle.HUAWEI:
            return _Reply([], "OK", ending)
        return _Reply([], "OK")

    def _reboot(self, _match: re.Match[str]) -> _Reply:
        self._end_live_call(CallOutcome.LOST)
        self._reset_settings()
        timer = threading.Timer(BOOT_DELAY_S, self._announce_boot)
        timer.daemon = True
        timer.start()
        return _Reply([], "OK")

    def _announce_boot(self) -> None:
        with self._lock:
            if not self._stopped.is_set():
                self._write_urcs(list(self.model.boot_lines))

    def _clcc_lines(self) -> list[str]:
        lines = ['+CLCC: 1,0,0,1,0,"",128'] if self.model.lists_data_session else []
        live = self._live
        if live is not None and live.outcome is None and live.placed.rings > 0:
            status = 0 if live.answered else 4
            number, number_type = _number_and_type(live.placed.spec)
            lines.append(f'+CLCC: 2,1,{status},0,0,"{number}",{number_type}')
        return lines

    # Call thread -----------------------------------------------------------

    def _run_calls(self) -> None:
        while not self._stopped.is_set():
            try:
                placed = self._calls.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self._play(placed)

    def _play(self, placed: PlacedCall) -> None:
        live = _LiveCall(placed)
        with self._lock:
            if self._stopped.is_set():
                placed._finish(CallOutcome.CANCELLED)
                return
            self._live = live
        try:
            if self._ring_until_decided(live):
                self._talk(live)
        finally:
            with self._lock:
                self._live = None
            placed._finish(live.outcome or CallOutcome.LOST)

    def _ring_until_decided(self, live: _LiveCall) -> bool:
        """Ring until answered (True) or over (False, ``live.outcome`` set)."""
        spec = live.placed.spec
        while True:
            with self._lock:
                if live.outcome is not None:
                    return False
                if live.answered:
                    return True
                if self._caller_gives_up(live):
                    self._announce_end(live)
                    self._end_live_call(CallOutcome.ABANDONED)
                    return False
                self._ring(live)
            live.changed.wait(spec.ring_interval_s)

    def _caller_gives_up(self, live: _LiveCall) -> bool:
        rings = live.placed.rings
        limit = live.placed.spec.hangup_after_rings
        return (limit is not None and rings >= limit) or rings >= NETWORK_NO_ANSWER_RINGS

    def _ring(self, live: _LiveCall) -> None:
        placed = live.placed
        placed.rings += 1
        if placed.rings == 1:
            placed.first_ring_wall = time.time()
            placed.first_ring_monotonic = time.monotonic()
        lines = ["+CRING: VOICE" if self._crc else "RING"]
        if self._clip and placed.spec.shown_presentation is not Presentation.UNAVAILABLE:
            lines.append(self._clip_line(placed.spec))
        self._write_urcs(lines)

    def _talk(self, live: _LiveCall) -> None:
        live.over.wait(live.placed.spec.talk_s)
        with self._lock:
            if live.outcome is None:
                self._announce_end(live)
                self._end_live_call(CallOutcome.ANSWERED)

    def _announce_end(self, live: _LiveCall) -> None:
        if live.placed.spec.announce_end:
            self._write_urcs(self._call_end_lines(live))

    def _clip_line(self, spec: SimulatedCall) -> str:
        number, number_type = _number_and_type(spec)
        validity = 1 if spec.shown_presentation is Presentation.RESTRICTED else 0
        if self.model.clip_shape is ClipShape.HUAWEI:
            return f'+CLIP: "{number}",{number_type},,,,{validity}'
        return f'+CLIP: "{number}",{number_type},"",0,"",{validity}'

    def _call_end_lines(self, live: _LiveCall) -> list[str]:
        """What the modem prints when the call ends now (before ``_end_live_call``)."""
        talked_s = 0
        if live.answered and live.placed.answered_monotonic is not None:
            talked_s = round(time.monotonic() - live.placed.answered_monotonic)
        style = self.model.call_end_style
        if style is CallEndStyle.HUAWEI:
            return [f"^CEND:1,{talked_s},29,16"]
        if style is CallEndStyle.SIMCOM and live.answered:
            hours, rest = divmod(talked_s, 3600)
            return [f"VOICE CALL: END: {hours:02d}{rest // 60:02d}{rest % 60:02d}"]
        if style is CallEndStyle.SIMCOM:
            number, _ = _number_and_type(live.placed.spec)
            return [f"MISSED_CALL: {time.strftime('%I:%M%p')} {number}".rstrip()]
        return ["NO CARRIER"]


_ECHO = re.compile(r"ATE([01]?)")
_CMEE = re.compile(r"AT\+CMEE=([012])")
_CLIP = re.compile(r"AT\+CLIP=([01])")
_CRC = re.compile(r"AT\+CRC=([01])")
_ANSWER = re.compile(r"ATA")
_HANG_UP = re.compile(r"ATH0?|AT\+CHUP")
_REBOOT = re.compile(r"AT\+CFUN=1,1")


def _number_and_type(spec: SimulatedCall) -> tuple[str, int]:
    if not spec.number:
        return "", 128
    return spec.number, 145 if spec.number.startswith("+") else 129


def _make_imei(rng: random.Random) -> str:
    """A 15-digit IMEI with a valid Luhn check digit (TAC prefix 86: a common modem range)."""
    body = "86" + "".join(str(rng.randrange(10)) for _ in range(12))
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)
