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

The parts, by responsibility: ``gsm_models`` (what differs per vendor, as
data), ``gsm_calls`` (the call scripts and their outcomes), ``gsm_commands``
(the AT command table and the settings a reset forgets), ``gsm_sms`` (SIM
message storage), ``sms_deliver`` (the PDUs a network delivers),
``gsm_power`` (the power key and supply, for the recovery ladder), and this
module: the port, the threads, the faults.

Calls are placed one at a time (a queue holds the rest): RING or
``+CRING: VOICE`` every ``ring_interval_s``, each with a ``+CLIP`` once
``AT+CLIP=1`` is set (unless the call's script withholds or delays it),
until ``ATA``, ``ATH`` or the caller gives up.

Fault injection, each a method (and most a scenario entry):

* ``chunking`` splits every write (``line``, ``byte``: one byte per write,
  ``random``: random pieces, seeded); ``inject`` writes arbitrary bytes.
* ``reboot()`` resets the modem as it resets itself: the call in progress is
  lost, every setting is forgotten, the model's banner follows (``RDY``,
  ``+CFUN: 1``, ``+CPIN: READY``, ``SMS DONE``...); a Huawei stick instead
  re-enumerates: its port vanishes and comes back (``replug``).
* ``replug()`` closes the port and links a new PTY at the same path (a USB
  device that re-enumerates under a new node).
* ``hang(cured_by=...)`` stops answering anything until the named recovery
  (``reset``: ``AT+CFUN=1,1``; ``power_key``; ``power_cut``; ``never``);
  ``power_key_pulse()`` / ``power_cut()`` are what the board would do;
  ``power_off()`` / ``power_on()`` are the same in halves, for a board whose
  pins it follows (``gsm_power.BoardPinFollower``).
* ``set_registration(stat)`` changes the network registration (+CREG URCs
  as enabled); ``deliver_sms(pdu)`` stores a message and announces it with
  ``+CMTI``; a full SIM refuses it.
* ``vanish`` closes the PTYs for good (an unplugged modem), ``vanish_audio``
  the audio PTY alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import select
import termios
import threading
import time
from enum import IntEnum
from pathlib import Path

from drivers.simulated.caller_audio import CallerVoice
from drivers.simulated.gsm_calls import (
    RING_INTERVAL_S,
    TALK_S,
    CallOutcome,
    LiveCall,
    PlacedCall,
    SimulatedCall,
    number_and_type,
)
from drivers.simulated.gsm_commands import Reply, Settings, SimulatedAtCommands
from drivers.simulated.gsm_models import (
    MODELS,
    CallEndStyle,
    Chunking,
    ClipShape,
    ModemModel,
)
from drivers.simulated.gsm_sms import SimStorage
from drivers.simulated.links import open_linked_pty, remove_link
from drivers.simulated.voice_port import SimulatedVoicePort
from gateway.events import Presentation

__all__ = [
    "DEFAULT_RSSI",
    "MODELS",
    "RING_INTERVAL_S",
    "TALK_S",
    "CallEndStyle",
    "CallOutcome",
    "Chunking",
    "ClipShape",
    "Cure",
    "ModemModel",
    "PlacedCall",
    "SimulatedCall",
    "SimulatedGsmModem",
]

logger = logging.getLogger("edge112.drivers.simulated")

NETWORK_NO_ANSWER_RINGS = 12  # the network gives up on an unanswered call after about a minute
DEFAULT_RSSI = 20  # AT+CSQ 20 = -73 dBm
BYTE_GAP_S = 0.0002  # between single-byte writes, about 2 bytes' time at 115200 baud
RANDOM_PIECE_MAX_BYTES = 16
RANDOM_GAP_MAX_S = 0.002
WRITE_STALL_S = 0.5  # nobody reads the port: drop output after this long, as a UART would
BOOT_DELAY_S = 0.2  # from a reset to the first boot URC
REPLUG_GAP_S = 0.3  # a re-enumerating USB device is absent this long
POWER_OFF_S = 0.3  # a power cut keeps the modem off this long (the real board: ~2 s)
PERIODIC_URC_S = 3.0
POLL_S = 0.1
MAX_COMMAND_BYTES = 512


class Cure(IntEnum):
    """The weakest recovery that brings a hung simulated modem back (ordered: stronger cures)."""

    RESET = 1  # AT+CFUN=1,1 still gets through
    POWER_KEY = 2
    POWER_CUT = 3
    NEVER = 4


class SimulatedGsmModem(SimulatedAtCommands):
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
        sim_capacity: int | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
        self.model = MODELS[model]
        self.chunking = Chunking(chunking)
        self.rssi = rssi
        self.registration = 1
        self.sms = SimStorage()
        if sim_capacity is not None:
            self.sms.capacities["SM"] = sim_capacity
        self.settings = Settings()
        self.resets = 0  # reboots and power cycles so far
        self._rng = random.Random(seed)
        self.imei = _make_imei(self._rng)
        self.iccid = "8962" + "".join(str(self._rng.randrange(10)) for _ in range(15))
        self._lock = threading.RLock()  # modem state and every write
        self._stopped = threading.Event()
        self._calls: queue.Queue[PlacedCall] = queue.Queue()
        self._live: LiveCall | None = None
        self._sequence = 0
        self._hung: Cure | None = None
        self._powered = True
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
    def hung(self) -> bool:
        return self._hung is not None

    @property
    def audio_link(self) -> Path | None:
        return self._voice_port.link if self._voice_port else None

    @property
    def audio_device(self) -> str | None:
        return self._voice_port.device if self._voice_port else None

    @property
    def port_speed(self) -> int:
        """The baud rate the gateway set on the port (read from the PTY's termios)."""
        with self._lock:
            attributes = termios.tcgetattr(self._slave)
        speed_code = attributes[5]
        for name in dir(termios):
            if name.startswith("B") and name[1:].isdigit() and getattr(termios, name) == speed_code:
                return int(name[1:])
        return -1

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

    # Faults: resets, hangs, power ------------------------------------------------

    def reboot(self) -> None:
        """Reset as the modem resets itself: call lost, settings forgotten, banner (or replug)."""
        with self._lock:
            self._hung = None
            self._restart()

    def replug(self, gap_s: float = REPLUG_GAP_S) -> None:
        """The USB device re-enumerates: the port vanishes now and a new node is linked at the
        same path after ``gap_s`` (a reader of the old one fails, as on a real unplug)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._end_live_call(CallOutcome.LOST)
            old_master, old_slave = self._master, self._slave
            self._master = self._slave = -1
            remove_link(self.link, self.device)
        for fd in (old_master, old_slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._after(gap_s, self._plug_in)

    def hang(self, cured_by: Cure | str = Cure.POWER_CUT) -> None:
        """Stop answering anything (commands are swallowed) until ``cured_by`` or stronger."""
        with self._lock:
            self._hung = Cure[cured_by.upper()] if isinstance(cured_by, str) else cured_by

    def power_key_pulse(self) -> bool:
        """The board restarted the modem with its power key; False if it stayed hung."""
        return self._power_cycle(Cure.POWER_KEY, 0.0)

    def power_cut(self, off_s: float = POWER_OFF_S) -> bool:
        """The board cut the supply for ``off_s``; False if it stayed hung (``Cure.NEVER``)."""
        return self._power_cycle(Cure.POWER_CUT, off_s)

    @property
    def powered(self) -> bool:
        """Whether the modem is on (a power key's off pulse or a cut supply turn it off)."""
        return self._powered

    def power_off(self, strength: Cure = Cure.POWER_KEY) -> bool:
        """Switched off by the board (``POWER_KEY``: its key's off pulse; ``POWER_CUT``: its
        supply): silent, call lost, until :meth:`power_on`. False if it is hung harder than
        ``strength`` reaches (it stays on, hung)."""
        with self._lock:
            if self._stopped.is_set() or (self._hung is not None and self._hung > strength):
                return False
            self._hung = None
            self._powered = False
            self._end_live_call(CallOutcome.LOST)
        return True

    def power_on(self) -> None:
        """Switched on by the board (its key's on pulse, its supply back): it boots."""
        with self._lock:
            if self._powered or self._stopped.is_set():
                return
            self._powered = True
            self._restart()

    def set_registration(self, status: int) -> None:
        """Network registration (27.007 <stat>: 1 home, 2 searching, 3 denied, 5 roaming)."""
        with self._lock:
            self.registration = status
            if self._answering():
                self._write_urcs(self.registration_urcs())

    def deliver_sms(self, pdu: str, *, status_report: bool = False) -> int | None:
        """The network delivers ``pdu``: stored and announced (+CMTI / +CDSI); None when full.

        A status report lands in the model's report memory ("SR" on the EC25)
        but is announced as "SM", as the EC25 does.
        """
        memory = self.model.status_report_storage if status_report else "SM"
        with self._lock:
            index = self.sms.store(memory, pdu)
            if index is not None and self._answering() and self.settings.sms_notify:
                urc = "+CDSI" if status_report else "+CMTI"
                self._write_urcs([f'{urc}: "SM",{index}'])
            return index

    def vanish(self) -> None:
        """Close the PTYs as an unplugged USB modem: reads on the ports fail from now on."""
        self._shut_down("vanished")

    def vanish_audio(self) -> None:
        """Close the audio PTY alone; calls and AT commands go on without audio."""
        if self._voice_port is not None:
            self._voice_port.close()

    def close(self) -> None:
        self._shut_down("closed")

    def cancel_queued(self) -> None:
        """Drop the calls waiting their turn (outcome CANCELLED); a call in progress goes on."""
        self._cancel_queued()

    # Lifecycle -------------------------------------------------------------------

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
            return live.voice, self.settings.audio_on

    def _answering(self) -> bool:
        return self._powered and self._hung is None and not self._stopped.is_set()

    def _restart(self) -> None:
        """Lose the call and the settings, then boot: banner on this port, or a replug."""
        self.resets += 1
        self._end_live_call(CallOutcome.LOST)
        self.settings = Settings()
        if self.model.reset_replugs:
            self._after(0.0, self.replug)
        else:
            self._after(BOOT_DELAY_S, self._announce_boot)

    def _power_cycle(self, strength: Cure, off_s: float) -> bool:
        with self._lock:
            if self._stopped.is_set() or (self._hung is not None and self._hung > strength):
                return False
            self._hung = None
            self._powered = False
            self._end_live_call(CallOutcome.LOST)
        if off_s:
            time.sleep(off_s)
        with self._lock:
            self._powered = True
            self._restart()
        return True

    def _plug_in(self) -> None:
        with self._lock:
            if self._stopped.is_set() or self._master >= 0:
                return
            self._master, self._slave, self.device, self.link = open_linked_pty(self.link)
            logger.info("simulated %s back on %s -> %s", self.model.key, self.link, self.device)
        self._after(BOOT_DELAY_S, self._announce_boot)

    def _announce_boot(self) -> None:
        with self._lock:
            if self._answering():
                self._write_urcs(list(self.model.boot_lines))

    def _after(self, delay_s: float, action: object) -> None:
        timer = threading.Timer(delay_s, action)  # type: ignore[arg-type]
        timer.daemon = True
        timer.start()

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
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
        remove_link(self.link, self.device)
        logger.info("simulated %s on %s %s", self.model.key, self.link, why)

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
            self.settings.audio_on = False

    # Writing ---------------------------------------------------------------------

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
        if not lines:
            return
        before, after = self.model.urc_frame
        self._write(b"".join(before + line.encode() + after for line in lines))

    def _write_reply(self, echo: str | None, reply: Reply) -> None:
        out = [echo.encode() + b"\r"] if echo is not None else []
        out += [b"\r\n" + line.encode() + b"\r\n" for line in [*reply.lines, reply.final]]
        self._write(b"".join(out))
        if reply.urcs_after:
            self._write_urcs(reply.urcs_after)

    # Command thread --------------------------------------------------------------

    def _serve_commands(self) -> None:
        pending = bytearray()
        next_periodic_at = time.monotonic() + PERIODIC_URC_S
        while not self._stopped.is_set():
            master = self._master
            if master < 0:  # unplugged for a moment
                time.sleep(POLL_S / 4)
                pending.clear()
                continue
            try:
                readable, _, _ = select.select([master], [], [], POLL_S)
                if readable:
                    pending += os.read(master, 4096)
            except (OSError, ValueError):
                time.sleep(POLL_S / 4)  # EIO while no slave side is open; a closed fd on replug
                continue
            pending = self._take_commands(pending)
            if self.model.periodic_urc and time.monotonic() >= next_periodic_at:
                next_periodic_at = time.monotonic() + PERIODIC_URC_S
                with self._lock:
                    if self._answering():
                        self._write_urcs([self.model.periodic_urc.format(rssi=self.rssi)])

    def _take_commands(self, pending: bytearray) -> bytearray:
        *commands, rest = pending.split(b"\r")
        for raw in commands:
            command = raw.replace(b"\n", b"").decode("ascii", "replace").strip()
            if not command.upper().startswith("AT"):
                continue
            with self._lock:
                if not self._powered:
                    continue
                if self._hung is not None:
                    if self._hung is Cure.RESET and command.upper() == "AT+CFUN=1,1":
                        self._hung = None
                        self._restart()
                    continue  # a hung modem swallows everything
                echo = self.settings.echo  # a modem echoes as it receives, before it executes
                self._write_reply(command if echo else None, self.respond(command))
        return rest if len(rest) <= MAX_COMMAND_BYTES else bytearray()

    def _reboot(self) -> None:
        self._restart()

    # Call thread -----------------------------------------------------------------

    def _run_calls(self) -> None:
        while not self._stopped.is_set():
            try:
                placed = self._calls.get(timeout=POLL_S)
            except queue.Empty:
                continue
            self._play(placed)

    def _play(self, placed: PlacedCall) -> None:
        live = LiveCall(placed)
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
                if self._live is live:
                    self._live = None
            placed._finish(live.outcome or CallOutcome.LOST)

    def _ring_until_decided(self, live: LiveCall) -> bool:
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

    def _caller_gives_up(self, live: LiveCall) -> bool:
        rings = live.placed.rings
        limit = live.placed.spec.hangup_after_rings
        return (limit is not None and rings >= limit) or rings >= NETWORK_NO_ANSWER_RINGS

    def _ring(self, live: LiveCall) -> None:
        placed, spec = live.placed, live.placed.spec
        placed.rings += 1
        if placed.rings == 1:
            placed.first_ring_wall = time.time()
            placed.first_ring_monotonic = time.monotonic()
        if not self._answering():
            return  # a hung modem rings nobody
        lines = self._call_state_urc(live, 4) if placed.rings == 1 else []
        ring = "+CRING: VOICE" if self.settings.crc else "RING"
        clip = None
        if (
            self.settings.clip
            and spec.network_clip
            and spec.shown_presentation is not Presentation.UNAVAILABLE
        ):
            clip = self._clip_line(spec)
        if clip is not None and spec.clip_delay_s > 0:
            self._write_urcs([*lines, ring])
            self._after(spec.clip_delay_s, lambda: self._late_clip(live, clip))
        elif clip is not None and spec.clip_first:
            self._write_urcs([*lines, clip, ring])
        else:
            self._write_urcs([*lines, ring, *([clip] if clip else [])])

    def _late_clip(self, live: LiveCall, clip: str) -> None:
        with self._lock:
            if live.outcome is None and not live.answered and self._answering():
                self._write_urcs([clip])

    def _call_state_urc(self, live: LiveCall, status: int) -> list[str]:
        """The model's call-state URC for ``live`` now in ``status`` (when enabled)."""
        if not self.settings.call_state_urcs or self.model.call_state_urc is None:
            return []
        number, number_type = number_and_type(live.placed.spec)
        record = f'2,1,{status},0,0,"{number}",{number_type}'
        if self.model.call_state_urc == "ccinfo":
            return [f'+QIND: "ccinfo",{record}']
        return [f"+CLCC: {record}"]

    def _talk(self, live: LiveCall) -> None:
        live.over.wait(live.placed.spec.talk_s)
        with self._lock:
            if live.outcome is None:
                self._announce_end(live)
                self._end_live_call(CallOutcome.ANSWERED)

    def _announce_end(self, live: LiveCall) -> None:
        if live.placed.spec.announce_end and self._answering():
            self._write_urcs(self._call_end_lines(live))

    def _clip_line(self, spec: SimulatedCall) -> str:
        number, number_type = number_and_type(spec)
        validity = 1 if spec.shown_presentation is Presentation.RESTRICTED else 0
        if self.model.clip_shape is ClipShape.HUAWEI:
            return f'+CLIP: "{number}",{number_type},,,,{validity}'
        return f'+CLIP: "{number}",{number_type},"",0,"",{validity}'

    def _call_end_lines(self, live: LiveCall) -> list[str]:
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
            number, _ = number_and_type(live.placed.spec)
            return [f"MISSED_CALL: {time.strftime('%I:%M%p')} {number}".rstrip()]
        return ["NO CARRIER"]


def _make_imei(rng: random.Random) -> str:
    """A 15-digit IMEI with a valid Luhn check digit (TAC prefix 86: a common modem range)."""
    body = "86" + "".join(str(rng.randrange(10)) for _ in range(12))
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)
