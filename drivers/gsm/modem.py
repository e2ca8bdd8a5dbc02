"""GSM modem driver: one modem port in, call events and line health for one line out.

``GsmModemDriver`` is a ``gateway.lines.LineDriverBase``: the base owns the
worker thread, reopening with backoff, line.status reporting, safe emit and
the call tracker. What is GSM is here, one session of a modem::

    open port (AtChannel, modems[].baudrate) -> AT ping -> ATE0, AT+CMEE=1
      -> identity (AT+CGMI/CGMM/CGSN) -> pick dialect -> dialect set-up (AT+CLIP=1,
         AT+CRC=1, AT+CREG=2, call-state URCs, SMS in PDU mode) -> LineStatus up
      -> serve: URCs -> CallTracker; every tick: a reset banner re-runs the set-up,
                caller id from AT+CLCC on the first ring, auto-answer (ATA) once the
                caller id is known, AT+CLCC while a call is up, SMS read and deleted once
                committed, an AT ping when idle for liveness_s, AT+CSQ / AT+CREG? now and then
      -> port vanished or modem silent: the session ends with the reason; the base
         reports the line down, ends an open call LINE_LOST and reopens; a modem that
         stays silent climbs the recovery ladder (``drivers.gsm.recovery``)

Resets: a modem that resets forgets ``AT+CLIP=1`` and the rest. Any boot
banner of the dialect (``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``SMS DONE``,
``Call Ready``...) after the line came up ends the call in progress with
cause ``modem_reset``, emits ``line.reset`` (once per burst of banners) and
runs the whole set-up again; a port that vanished and came back is reported
the same way (trigger ``port_returned``) once the line is up again.

Caller id, from every source, the first with a number wins (``CallTracker``
takes the first): ``+CLIP``, ``+CRING`` with a number, ``AT+CLCC`` polled at
once on the first ring, the dialect's call-state URCs (Quectel ccinfo,
SIMCom +CLCC), SIM7600 ``MISSED_CALL``. Data sessions listed as calls (EC25
mode 1) never count. Auto-answer waits until the call has been offered (its
caller id known, or ``caller_id_grace_s`` over): ``ATA`` on the first RING
would suppress a ``+CLIP`` still on its way.

Call audio, when ``audio_url`` and ``audio_sink_factory`` are both given
(``drivers.gsm.call_audio``)::

    answered -> open the audio port (once; kept open) -> dialect audio-on (AT+QPCMV=1,0, ...)
      -> factory(CallAudio) -> sink.feed(320-byte frame) every 20 ms while the call is up
    call.ended emitted -> sink detached, sink.close() once -> dialect audio-off (AT+CPCMREG=0)

Audio trouble (no port, a refused command, a failing sink) is logged and
the call goes on without audio: signalling never depends on it.

Parts: this module owns the session (set-up, resets, liveness, URC
dispatch); ``drivers.gsm.call_control`` (``CallControl``) acts on the call,
``drivers.gsm.readiness`` (``Readiness``) reports signal and registration,
``drivers.gsm.sms.inbox`` handles SMS, ``drivers.gsm.recovery`` the ladder.

Threads: the channel's reader runs the URC callback, which only feeds the
``CallTracker`` and sets flags (it never sends a command); the base's worker
thread sends every command. Caller numbers are masked in every log line
(``gateway.privacy``); only the events carry them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import ClassVar

from drivers.at_channel import (
    BAUD_RATE,
    PORT_ERRORS,
    AtChannel,
    AtChannelClosedError,
    AtCommandError,
    AtError,
    AtTimeoutError,
)
from drivers.gsm.binding import PROBE_GLOBS, find_at_port, parse_binding
from drivers.gsm.call_audio import ModemCallAudio
from drivers.gsm.call_control import CallControl
from drivers.gsm.dialects import (
    CallEnd,
    CallListed,
    GenericDialect,
    MessageStored,
    ModemIdentity,
    RegistrationChanged,
    ResetBanner,
    Ring,
    StorageFull,
    caller_from_record,
    pick_dialect,
)
from drivers.gsm.power import ModemPower
from drivers.gsm.readiness import METRICS_INTERVAL_S, Readiness
from drivers.gsm.recovery import LadderTimings, RecoveryLadder
from drivers.gsm.responses import (
    CallerId,
    CallStatus,
)
from drivers.gsm.sms.inbox import SMS_PARTS_TIMEOUT_S, SmsInbox
from gateway.audio.contract import AudioSinkFactory
from gateway.calls import CALLER_ID_GRACE_S, CallState
from gateway.events import (
    EndCause,
    LineReset,
    Presentation,
    ResetTrigger,
)
from gateway.lines import (
    LINE_DOWN,
    REOPEN_BACKOFF_INITIAL_S,
    REOPEN_BACKOFF_MAX_S,
    STUCK_AFTER_S,
    Emit,
    LineDriverBase,
    SessionEnd,
)
from gateway.privacy import mask_digit_runs

logger = logging.getLogger("edge112.drivers.gsm")

COMMAND_TIMEOUT_S = 5.0
PING_TIMEOUT_S = 1.0
PING_ATTEMPTS = 3  # the first command after opening may meet boot noise; so may a busy modem
LIVENESS_S = 4.0  # idle this long without an answer: AT ping (hung found in <= 4 + 3 x 1 s)
CALL_POLL_INTERVAL_S = 1.0  # AT+CLCC while a call is up
SIGNAL_POLL_INTERVAL_S = 30.0  # AT+CSQ and registration
TICK_S = 0.1  # worker wake-up during a call: caller-id grace and auto-answer latency
IDLE_TICK_S = 0.5  # ... with no call: every URC wakes it anyway, so this only paces the timers
MAX_CONSECUTIVE_TIMEOUTS = 3  # then the modem counts as hung: reopen the port
SIGNAL_REPORT_STEP_DB = 6  # smaller signal changes do not make a LineStatus
RESET_SETTLE_S = 0.5  # after a boot banner, let the rest of the banner arrive before set-up
RESET_BURST_S = 20.0  # banners this close to the last reset belong to it (one line.reset)


class ModemHungError(AtError):
    """The modem answered nothing, not even an AT ping: the session ends and the ladder climbs."""


class GsmModemDriver(CallControl, Readiness, LineDriverBase[AtChannel]):
    """Drives the GSM modem at ``url`` as line ``name``; events go to ``emit``.

    ``emit`` is called from the driver's threads and must be quick and
    thread-safe (typically: put on the outbox writer's queue). When it
    returns the outbox's pending commit (``gateway.lines.Commit``), an SMS is
    deleted from the modem only once its event is committed.
    """

    FAMILY = "gsm"
    SOURCE_KIND = "port"
    OPEN_ERRORS = PORT_ERRORS
    logger: ClassVar[logging.Logger] = logger

    def __init__(
        self,
        name: str,
        url: str,
        emit: Emit,
        *,
        baudrate: int = BAUD_RATE,
        answer_after_rings: int = 0,
        poll_interval_s: float = CALL_POLL_INTERVAL_S,
        signal_interval_s: float = SIGNAL_POLL_INTERVAL_S,
        liveness_s: float = LIVENESS_S,
        reopen_backoff_s: float = REOPEN_BACKOFF_INITIAL_S,
        reopen_backoff_max_s: float = REOPEN_BACKOFF_MAX_S,
        caller_id_grace_s: float = CALLER_ID_GRACE_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        audio_url: str | None = None,
        audio_sink_factory: AudioSinkFactory | None = None,
        stuck_after_s: float = STUCK_AFTER_S,
        power: ModemPower | None = None,
        ladder_timings: LadderTimings | None = None,
        sms_parts_timeout_s: float = SMS_PARTS_TIMEOUT_S,
        probe_globs: tuple[str, ...] = PROBE_GLOBS,
        metrics_interval_s: float = METRICS_INTERVAL_S,
    ) -> None:
        super().__init__(
            name,
            emit,
            reopen_backoff_s=reopen_backoff_s,
            reopen_backoff_max_s=reopen_backoff_max_s,
            caller_id_grace_s=caller_id_grace_s,
            stuck_after_s=stuck_after_s,
        )
        self.url = url
        self._binding = parse_binding(url)  # a port URL, or "imei:..." / "iccid:..."
        self._probe_globs = probe_globs
        self._bound_port: str | None = None  # where the bound modem was found last
        self._baudrate = baudrate
        self._answer_after_rings = answer_after_rings
        self._poll_interval_s = poll_interval_s
        self._signal_interval_s = signal_interval_s
        self._metrics_interval_s = metrics_interval_s  # line.metrics (drivers.gsm.readiness)
        self._liveness_s = liveness_s
        self._command_timeout_s = command_timeout_s
        self._tracker = self._call_tracker()  # a modem carries one call at a time
        self._dialect: GenericDialect = GenericDialect()
        self._identity: ModemIdentity | None = None
        self._lost_reason: str | None = None
        self._answer_call_id: str | None = None
        self._consecutive_timeouts = 0
        self._last_answer_at = time.monotonic()
        self._call_missing: tuple[str, int] | None = None  # (call id, polls without it)
        self._call_audio = (
            ModemCallAudio(name, audio_url, audio_sink_factory)
            if audio_url and audio_sink_factory
            else None
        )
        self._audio_call_id: str | None = None  # the call audio was switched on for (worker)
        # Resets (the reader thread sets, the worker takes; under _flags_lock).
        self._flags_lock = threading.Lock()
        self._session_up = False
        self._pending_reset: tuple[str, str | None] | None = None  # (banner, call cut)
        self._setup_again = False  # a banner came during the set-up: run it once more
        self._last_reset_at = float("-inf")
        self._resets = 0
        self._port_lost_call: tuple[str | None] | None = None  # a session lost its port
        # Caller id and offers.
        self._lookup_caller_for: str | None = None  # call id whose number AT+CLCC may give
        self._offered: str | None = None  # the last call id offered
        self._recent_calls: dict[str, tuple[str, float]] = {}  # number -> (call id, last seen)
        # Registration by URC: technology -> <stat>.
        self._registration: dict[str, int] = {}
        self._registration_changed = False
        self._ladder = RecoveryLadder(
            name,
            self._emit_safely,
            power,
            ladder_timings or LadderTimings(),
            self._note_progress,
            self._stopping,
        )
        self._opened = False  # whether this session's port opened (for the ladder)
        self._reset_command = GenericDialect.reset_command
        self._sms = SmsInbox(
            name,
            self._emit_for_commit,
            self._emit_safely,
            parts_timeout_s=sms_parts_timeout_s,
            call_for_number=self._call_for_number,
        )

    @property
    def identity(self) -> ModemIdentity | None:
        """What the modem said it is, once set up."""
        return self._identity

    @property
    def dialect_name(self) -> str:
        return self._dialect.name

    @property
    def resets(self) -> int:
        """Modem resets seen since the driver started (banners and returned ports)."""
        return self._resets

    # One session (worker thread) ---------------------------------------------

    def _open_source(self) -> AtChannel:
        self._lost_reason = None
        self._opened = False
        self._dialect = GenericDialect()
        with self._flags_lock:
            self._session_up = False
            self._pending_reset = None
            self._setup_again = False
        port = self.url
        if self._binding.by_identity:  # find it again: USB may have renamed it
            port = find_at_port(
                self._binding,
                globs=self._probe_globs,
                first=self._bound_port,
                baudrate=self._baudrate,
            )
            self._bound_port = port
        channel = AtChannel(
            port,
            on_urc=self._on_urc,
            on_lost=self._on_lost,
            name=self.name,
            baudrate=self._baudrate,
        )
        self._opened = True
        return channel

    def _close_source(self, channel: AtChannel) -> None:
        channel.close()  # fails a command in flight at once

    def _serve(self, channel: AtChannel) -> SessionEnd:
        try:
            self._ladder.before_setup(channel, self._reset_command)
            self._initialise(channel)
            self._line_came_up()
            self._guarded(self._start_sms, channel)  # messages stored meanwhile, first
            self._poll_health(channel)
            return SessionEnd(self._serve_calls(channel), came_up=True)
        except AtChannelClosedError as exc:
            return self._ended(SessionEnd(self._lost_reason or exc.reason))
        except (AtTimeoutError, ModemHungError) as exc:
            reason = f"modem not answering: {exc}"
            self._ladder.failed(reason)
            return SessionEnd(reason, came_up=self._session_up)
        except AtError as exc:
            return SessionEnd(f"modem set-up failed: {exc}")

    def _ended(self, end: SessionEnd) -> SessionEnd:
        """The port was lost: remember the call it cut, for line.reset when the port returns."""
        if self._lost_reason is not None and self._session_up:
            self._port_lost_call = (self._tracker.call_id,)
        return SessionEnd(end.reason, came_up=self._session_up)

    def _session_ended(self) -> None:
        self._report_unreachable()  # line.readiness: not ready (when it said otherwise)
        self._end_call_audio(None)
        self._ladder.between_sessions(opened=self._opened)

    def _stopped(self) -> None:
        if self._call_audio is not None:
            self._call_audio.close()  # after the end event: the sink closes last

    def _signal_moved(self, last_dbm: int | None, new_dbm: int | None) -> bool:
        if last_dbm is None or new_dbm is None:
            return last_dbm != new_dbm
        return abs(new_dbm - last_dbm) >= SIGNAL_REPORT_STEP_DB

    def _initialise(self, channel: AtChannel) -> None:
        """The whole set-up; run again after a reset (no setting survives one)."""
        while True:
            with self._flags_lock:
                self._setup_again = False
            self._set_up(channel)
            with self._flags_lock:
                if not self._setup_again:
                    self._session_up = True
                    return

    def _set_up(self, channel: AtChannel) -> None:
        self._consecutive_timeouts = 0
        self._ping(channel)
        self._command(channel, "ATE0")
        self._command(channel, "AT+CMEE=1")
        identity = self._read_identity(channel)
        dialect = pick_dialect(identity)
        self._dialect = dialect  # URCs from now on are read with its parser
        for command in dialect.setup_commands:
            self._command(channel, command)
        for command in (*dialect.optional_setup_commands, *dialect.sms_setup_commands):
            try:
                self._command(channel, command)
            except AtCommandError as exc:
                logger.info("%s: optional %s refused: %s", self.name, command, exc.final)
        self._identity = identity
        self._reset_command = dialect.reset_command
        self._registration.clear()
        logger.info(
            "%s: %s, IMEI %s, %s dialect, on %s",
            self.name,
            identity.describe(),
            identity.imei,
            dialect.name,
            self._bound_port or self.url,
        )

    def _line_came_up(self) -> None:
        self._ladder.recovered()
        cut = self._port_lost_call
        if cut is not None:
            self._port_lost_call = None
            self._count_reset(ResetTrigger.PORT_RETURNED, None, cut[0])

    def _ping(self, channel: AtChannel) -> None:
        for attempt in range(1, PING_ATTEMPTS + 1):
            try:
                channel.command("AT", PING_TIMEOUT_S)
            except AtCommandError:
                pass  # it answers; that is all a ping asks
            except AtTimeoutError as exc:
                self._note_progress()
                if attempt == PING_ATTEMPTS:
                    raise ModemHungError(
                        f"no answer to {PING_ATTEMPTS} AT pings ({PING_TIMEOUT_S:g} s each)"
                    ) from exc
                continue
            self._answered_now()
            return

    def _read_identity(self, channel: AtChannel) -> ModemIdentity:
        return ModemIdentity(
            manufacturer=_first_value(self._command(channel, "AT+CGMI"), "+CGMI:"),
            model=_first_value(self._command(channel, "AT+CGMM"), "+CGMM:"),
            imei=_first_value(self._command(channel, "AT+CGSN"), "+CGSN:"),
        )

    def _serve_calls(self, channel: AtChannel) -> str:
        """Run until the port is lost, the modem hangs or the driver stops; say why."""
        now = time.monotonic()
        next_call_poll_at = now + self._poll_interval_s
        next_health_at = now + self._signal_interval_s
        while not self._stopping.is_set():
            if self._lost_reason is not None:
                raise AtChannelClosedError(self._lost_reason)
            if self._consecutive_timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
                raise ModemHungError(f"{MAX_CONSECUTIVE_TIMEOUTS} commands timed out in a row")
            self._wake.wait(TICK_S if self._tracker.state is not CallState.IDLE else IDLE_TICK_S)
            self._wake.clear()
            self._note_progress()
            if self._take_reset(channel):
                next_health_at = time.monotonic() + self._signal_interval_s
                continue
            self._tick_calls()
            self._end_call_audio(channel)
            self._guarded(self._look_up_caller, channel)
            self._guarded(self._answer_if_due, channel)
            now = time.monotonic()
            if self._tracker.state is CallState.IDLE:
                next_call_poll_at = now + self._poll_interval_s
            elif now >= next_call_poll_at:
                self._guarded(self._confirm_calls, channel)
                next_call_poll_at = now + self._poll_interval_s
            if self._registration_changed:
                self._registration_changed = False
                self._report_registration(self._last_signal_dbm)
                self._guarded(self._poll_readiness, channel)  # line.readiness, at once
            if now >= next_health_at:
                self._guarded(self._poll_health, channel)
                next_health_at = now + self._signal_interval_s
            self._guarded(self._sms.work, channel)
            self._check_alive(channel)
        return "driver stopped"

    def _guarded(self, work: Callable[[AtChannel], None], channel: AtChannel) -> None:
        """Run one periodic job; a refused or unanswered command does not end the session."""
        try:
            work(channel)
        except AtTimeoutError as exc:
            logger.warning("%s: %s", self.name, exc)
        except AtCommandError as exc:
            logger.warning("%s: %s", self.name, mask_digit_runs(str(exc)))
        except AtChannelClosedError:
            pass  # _serve_calls sees the lost reason next

    def _command(self, channel: AtChannel, command: str) -> list[str]:
        """``channel.command`` that counts consecutive timeouts (a hung modem)."""
        try:
            lines = channel.command(command, self._command_timeout_s)
        except AtTimeoutError:
            self._consecutive_timeouts += 1
            self._last_answer_at = float("-inf")  # ping at once: is it hung?
            raise
        except AtCommandError:
            self._answered_now()
            raise
        finally:
            self._note_progress()  # answered or timed out: the worker is not stuck
        self._answered_now()
        return lines

    def _answered_now(self) -> None:
        self._consecutive_timeouts = 0
        self._last_answer_at = time.monotonic()

    def _check_alive(self, channel: AtChannel) -> None:
        """Idle for ``liveness_s`` without an answer: ping; a silent modem ends the session."""
        if time.monotonic() - self._last_answer_at < self._liveness_s:
            return
        self._ping(channel)

    # Resets (worker thread) ---------------------------------------------------

    def _take_reset(self, channel: AtChannel) -> bool:
        """A boot banner came after the line was up: report it and set the modem up again."""
        with self._flags_lock:
            pending, self._pending_reset = self._pending_reset, None
        if pending is None:
            return False
        banner, call_id = pending
        now = time.monotonic()
        if now - self._last_reset_at >= RESET_BURST_S:
            self._count_reset(ResetTrigger.BANNER, banner, call_id)
            modem = self._identity.describe() if self._identity else "modem"
            self._report_health(LINE_DOWN, f"{modem}: reset ({banner}); setting it up again")
        self._last_reset_at = now
        self._stopping.wait(RESET_SETTLE_S)
        with self._flags_lock:
            self._pending_reset = None  # the rest of this banner
            self._session_up = False
        self._end_call_audio(channel)
        self._initialise(channel)
        self._guarded(self._start_sms, channel)
        self._poll_health(channel)
        return True

    def _count_reset(self, trigger: ResetTrigger, banner: str | None, call_id: str | None) -> None:
        self._resets += 1
        logger.warning(
            "%s: modem reset (%s%s), reset %d; set-up runs again",
            self.name,
            trigger.value,
            f": {banner}" if banner else "",
            self._resets,
        )
        self._emit_safely(
            LineReset(
                line=self.name,
                trigger=trigger,
                banner=banner,
                resets=self._resets,
                call_id=call_id,
            )
        )

    def _start_sms(self, channel: AtChannel) -> None:
        self._sms.start_session(channel, self._dialect, self._command)

    # Reader-thread callbacks --------------------------------------------------

    def _on_urc(self, line: str) -> None:
        try:
            signal = self._dialect.parse_urc(line)
        except ValueError:
            logger.warning("%s: unreadable URC %s", self.name, mask_digit_runs(line))
            return
        match signal:
            case Ring(number=number):
                started = self._tracker.call_id is None
                self._tracker.ring()
                if number:
                    self._tracker.caller_id(number, Presentation.ALLOWED)
                if started or self._lookup_caller_for is None:
                    self._lookup_caller_for = self._tracker.call_id
                self._consider_answering()
                self.wake()
            case CallerId(number=number, presentation=presentation):
                self._tracker.caller_id(number, presentation)
                self.wake()
            case CallListed(record=record):
                caller = caller_from_record(record)
                if caller is not None and record.status in (
                    CallStatus.INCOMING,
                    CallStatus.WAITING,
                ):
                    # Before the first RING this starts the call and stands for that ring,
                    # as a +CLIP would (the RING that follows does not count again).
                    self._tracker.caller_id(caller.number, caller.presentation)
                    self.wake()
            case CallEnd(cause=cause, number=number):
                if number and self._tracker.call_id is not None:
                    self._tracker.caller_id(number, Presentation.ALLOWED)
                self._tracker.released(cause)
                self.wake()  # the worker closes the call's audio
            case ResetBanner(line=banner):
                self._on_reset_banner(banner)
            case RegistrationChanged(technology=technology, status=status):
                self._registration[technology] = status
                self._registration_changed = True
                self.wake()
            case MessageStored(memory=memory, index=index, status_report=report):
                self._sms.announce(memory, index, report)
                self.wake()
            case StorageFull(memory=memory):
                self._sms.storage_full_announced(memory)
                self.wake()
            case None:
                logger.debug("%s: URC %s", self.name, mask_digit_runs(line))

    def _on_reset_banner(self, banner: str) -> None:
        with self._flags_lock:
            if not self._session_up:
                self._setup_again = True  # during the set-up: run it again, nothing to report
                self.wake()
                return
            call_id = self._tracker.call_id
            if self._pending_reset is None:
                self._pending_reset = (banner, call_id)
        if call_id is not None:
            logger.warning("%s: call %s cut by a modem reset", self.name, call_id)
            self._tracker.released(EndCause.MODEM_RESET)
        self.wake()

    def _on_lost(self, reason: str) -> None:
        self._lost_reason = f"port lost: {reason}"
        self.wake()


def _first_value(lines: list[str], prefix: str) -> str:
    """The first non-empty information line, without ``prefix`` and quotes."""
    for line in lines:
        value = line.removeprefix(prefix).strip().strip('"')
        if value:
            return value
    return ""
