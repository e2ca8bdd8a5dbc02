"""GSM modem driver: one modem port in, call events and line health for one line out.

``GsmModemDriver`` is a ``gateway.lines.LineDriverBase``: the base owns the
worker thread, reopening with backoff, line.status reporting, safe emit and
the call tracker. What is GSM is here, one session of a modem::

    open port (AtChannel) -> AT ping -> ATE0, AT+CMEE=1 -> identity (AT+CGMI/CGMM/CGSN)
      -> pick dialect -> dialect set-up (AT+CLIP=1, AT+CRC=1, ...) -> LineStatus up
      -> serve: URCs -> CallTracker; every tick: caller-id grace, auto-answer (ATA),
                AT+CLCC while a call is up, AT+CSQ / AT+CREG? now and then
      -> port vanished or modem silent: the session ends with the reason; the base
         reports the line down, ends an open call LINE_LOST and reopens

Call audio, when ``audio_url`` and ``audio_sink_factory`` are both given
(``drivers.gsm.call_audio``)::

    answered -> open the audio port (once; kept open) -> dialect audio-on (AT+QPCMV=1,0, ...)
      -> factory(CallAudio) -> sink.feed(320-byte frame) every 20 ms while the call is up
    call.ended emitted -> sink detached, sink.close() once -> dialect audio-off (AT+CPCMREG=0)

Audio trouble (no port, a refused command, a failing sink) is logged and
the call goes on without audio: signalling never depends on it.

Threads: the channel's reader runs the URC callback, which only feeds the
``CallTracker`` (it never sends a command); the base's worker thread sends
every command. Caller numbers are masked in every log line
(``gateway.privacy``); only the events carry them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from drivers.at_channel import (
    PORT_ERRORS,
    AtChannel,
    AtChannelClosedError,
    AtCommandError,
    AtError,
    AtTimeoutError,
)
from drivers.gsm.call_audio import ModemCallAudio
from drivers.gsm.dialects import (
    CallEnd,
    GenericDialect,
    ModemIdentity,
    Ring,
    pick_dialect,
)
from drivers.gsm.responses import (
    CallerId,
    CallStatus,
    incoming_voice_calls,
    parse_csq_dbm,
    parse_registration,
)
from gateway.audio.contract import AudioSinkFactory
from gateway.calls import CALLER_ID_GRACE_S, CallState
from gateway.events import EndCause, Event
from gateway.lines import (
    LINE_DOWN,
    LINE_UP,
    REOPEN_BACKOFF_INITIAL_S,
    REOPEN_BACKOFF_MAX_S,
    STUCK_AFTER_S,
    LineDriverBase,
    SessionEnd,
)
from gateway.privacy import mask_digit_runs

logger = logging.getLogger("edge112.drivers.gsm")

COMMAND_TIMEOUT_S = 5.0
PING_TIMEOUT_S = 1.0
PING_ATTEMPTS = 3  # the first command after opening may meet boot noise
CALL_POLL_INTERVAL_S = 1.0  # AT+CLCC while a call is up
SIGNAL_POLL_INTERVAL_S = 30.0  # AT+CSQ and registration
TICK_S = 0.1  # worker wake-up: caller-id grace and auto-answer latency
MAX_CONSECUTIVE_TIMEOUTS = 3  # then the modem counts as hung: reopen the port
CALL_GONE_AFTER_POLLS = 2  # AT+CLCC polls without the call before it counts as ended
SIGNAL_REPORT_STEP_DB = 6  # smaller signal changes do not make a LineStatus

# Final result codes of ATA that mean the caller is gone.
ANSWER_FAILURES = {
    "NO CARRIER": EndCause.REMOTE_HANGUP,
    "BUSY": EndCause.BUSY,
    "NO ANSWER": EndCause.NO_ANSWER,
}


class GsmModemDriver(LineDriverBase[AtChannel]):
    """Drives the GSM modem at ``url`` as line ``name``; events go to ``emit``.

    ``emit`` is called from the driver's threads and must be quick and
    thread-safe (typically: put on the outbox writer's queue).
    """

    FAMILY = "gsm"
    SOURCE_KIND = "port"
    OPEN_ERRORS = PORT_ERRORS
    logger: ClassVar[logging.Logger] = logger

    def __init__(
        self,
        name: str,
        url: str,
        emit: Callable[[Event], None],
        *,
        answer_after_rings: int = 0,
        poll_interval_s: float = CALL_POLL_INTERVAL_S,
        signal_interval_s: float = SIGNAL_POLL_INTERVAL_S,
        reopen_backoff_s: float = REOPEN_BACKOFF_INITIAL_S,
        reopen_backoff_max_s: float = REOPEN_BACKOFF_MAX_S,
        caller_id_grace_s: float = CALLER_ID_GRACE_S,
        command_timeout_s: float = COMMAND_TIMEOUT_S,
        audio_url: str | None = None,
        audio_sink_factory: AudioSinkFactory | None = None,
        stuck_after_s: float = STUCK_AFTER_S,
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
        self._answer_after_rings = answer_after_rings
        self._poll_interval_s = poll_interval_s
        self._signal_interval_s = signal_interval_s
        self._command_timeout_s = command_timeout_s
        self._tracker = self._call_tracker()  # a modem carries one call at a time
        self._dialect: GenericDialect = GenericDialect()
        self._identity: ModemIdentity | None = None
        self._lost_reason: str | None = None
        self._answer_call_id: str | None = None
        self._consecutive_timeouts = 0
        self._call_missing: tuple[str, int] | None = None  # (call id, polls without it)
        self._call_audio = (
            ModemCallAudio(name, audio_url, audio_sink_factory)
            if audio_url and audio_sink_factory
            else None
        )
        self._audio_call_id: str | None = None  # the call audio was switched on for (worker)

    @property
    def identity(self) -> ModemIdentity | None:
        """What the modem said it is, once set up."""
        return self._identity

    @property
    def dialect_name(self) -> str:
        return self._dialect.name

    # One session (worker thread) ---------------------------------------------

    def _open_source(self) -> AtChannel:
        self._lost_reason = None
        self._dialect = GenericDialect()
        return AtChannel(self.url, on_urc=self._on_urc, on_lost=self._on_lost, name=self.name)

    def _close_source(self, channel: AtChannel) -> None:
        channel.close()  # fails a command in flight at once

    def _serve(self, channel: AtChannel) -> SessionEnd:
        try:
            self._initialise(channel)
            self._poll_health(channel)
            return SessionEnd(self._serve_calls(channel), came_up=True)
        except AtChannelClosedError as exc:
            return SessionEnd(self._lost_reason or exc.reason)
        except AtError as exc:
            return SessionEnd(f"modem set-up failed: {exc}")

    def _session_ended(self) -> None:
        self._end_call_audio(None)

    def _stopped(self) -> None:
        if self._call_audio is not None:
            self._call_audio.close()  # after the end event: the sink closes last

    def _signal_moved(self, last_dbm: int | None, new_dbm: int | None) -> bool:
        if last_dbm is None or new_dbm is None:
            return last_dbm != new_dbm
        return abs(new_dbm - last_dbm) >= SIGNAL_REPORT_STEP_DB

    def _initialise(self, channel: AtChannel) -> None:
        self._consecutive_timeouts = 0
        self._ping(channel)
        self._command(channel, "ATE0")
        self._command(channel, "AT+CMEE=1")
        identity = self._read_identity(channel)
        dialect = pick_dialect(identity)
        for command in dialect.setup_commands:
            self._command(channel, command)
        for command in dialect.optional_setup_commands:
            try:
                self._command(channel, command)
            except AtCommandError as exc:
                logger.info("%s: optional %s refused: %s", self.name, command, exc.final)
        self._identity, self._dialect = identity, dialect
        logger.info(
            "%s: %s, IMEI %s, %s dialect, on %s",
            self.name,
            identity.describe(),
            identity.imei,
            dialect.name,
            self.url,
        )

    def _ping(self, channel: AtChannel) -> None:
        for attempt in range(1, PING_ATTEMPTS + 1):
            try:
                channel.command("AT", PING_TIMEOUT_S)
                return
            except AtCommandError:
                return  # it answers; that is all a ping asks
            except AtTimeoutError:
                if attempt == PING_ATTEMPTS:
                    raise

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
                return self._lost_reason
            if self._consecutive_timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
                return "modem stopped answering commands"
            self._wake.wait(TICK_S)
            self._wake.clear()
            self._note_progress()
            self._tick_calls()
            self._end_call_audio(channel)
            self._guarded(self._answer_if_due, channel)
            now = time.monotonic()
            if self._tracker.state is CallState.IDLE:
                next_call_poll_at = now + self._poll_interval_s
            elif now >= next_call_poll_at:
                self._guarded(self._confirm_calls, channel)
                next_call_poll_at = now + self._poll_interval_s
            if now >= next_health_at:
                self._guarded(self._poll_health, channel)
                next_health_at = now + self._signal_interval_s
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
            raise
        except AtCommandError:
            self._consecutive_timeouts = 0
            raise
        finally:
            self._note_progress()  # answered or timed out: the worker is not stuck
        self._consecutive_timeouts = 0
        return lines

    # Periodic jobs (worker thread) ------------------------------------------

    def _answer_if_due(self, channel: AtChannel) -> None:
        call_id, self._answer_call_id = self._answer_call_id, None
        if call_id is None or self._tracker.call_id != call_id:
            return
        if self._tracker.state is not CallState.RINGING:
            return
        try:
            self._command(channel, "ATA")
        except AtCommandError as exc:
            cause = ANSWER_FAILURES.get(exc.final)
            if cause is None:
                raise
            self._tracker.released(cause, call_id=call_id)
            return
        self._answered(channel, call_id)

    def _confirm_calls(self, channel: AtChannel) -> None:
        """AT+CLCC: catch an end or an answer whose URC never came (or was garbled)."""
        call_id = self._tracker.call_id
        if call_id is None:
            return
        records = incoming_voice_calls(self._command(channel, "AT+CLCC"))
        if not records:
            if self._polls_without(call_id) >= CALL_GONE_AFTER_POLLS:
                logger.warning("%s: call %s no longer listed by AT+CLCC", self.name, call_id)
                self._tracker.released(EndCause.UNKNOWN, call_id=call_id)
            return
        self._call_missing = None
        answered = any(record.status == CallStatus.ACTIVE for record in records)
        if answered and self._tracker.state is CallState.RINGING:
            self._answered(channel, call_id)

    def _answered(self, channel: AtChannel, call_id: str) -> None:
        self._tracker.answered(call_id=call_id)
        self._start_call_audio(channel, call_id)

    # Call audio (worker thread) -----------------------------------------------

    def _start_call_audio(self, channel: AtChannel, call_id: str) -> None:
        """Port, audio-on commands, sink: each failure is logged and leaves the call unheard."""
        audio = self._call_audio
        if audio is None or self._tracker.call_id != call_id:
            return
        if not audio.open_port():
            return
        for command in self._dialect.audio_on_commands:
            try:
                self._command(channel, command)
            except (AtCommandError, AtTimeoutError) as exc:
                logger.warning("%s: no audio for call %s: %s", self.name, call_id, exc)
                return
        self._audio_call_id = call_id
        if self._tracker.call_id == call_id:
            audio.begin(call_id)

    def _end_call_audio(self, channel: AtChannel | None) -> None:
        """Once the audio's call is no longer current (its end event is out), close its sink.

        The tracker emits the end event while it holds its lock and forgets
        the call in the same step, so a call id that is no longer current
        means the event has been emitted. With a channel, the dialect's
        audio-off commands follow.
        """
        audio, call_id = self._call_audio, self._audio_call_id
        if audio is None or call_id is None or self._tracker.call_id == call_id:
            return
        self._audio_call_id = None
        audio.end()
        if channel is None:
            return
        for command in self._dialect.audio_off_commands:
            try:
                self._command(channel, command)
            except AtError as exc:  # a lost channel shows in _serve next
                logger.warning("%s: %s after call %s: %s", self.name, command, call_id, exc)
                return

    def _polls_without(self, call_id: str) -> int:
        """Count one more AT+CLCC poll that did not list ``call_id``; return the count."""
        previous = self._call_missing
        missing = previous[1] + 1 if previous and previous[0] == call_id else 1
        self._call_missing = (call_id, missing)
        return missing

    def _poll_health(self, channel: AtChannel) -> None:
        signal_dbm = self._read_signal_dbm(channel)
        registered = self._read_registration(channel)
        modem = self._identity.describe() if self._identity else "modem"
        if registered is False:
            self._report_health(LINE_DOWN, f"{modem}: not registered on the network", signal_dbm)
        else:
            state = "registered" if registered else "registration unknown"
            self._report_health(LINE_UP, f"{modem}: {state}", signal_dbm)

    def _read_signal_dbm(self, channel: AtChannel) -> int | None:
        try:
            lines = self._command(channel, "AT+CSQ")
        except AtCommandError:
            return None
        for line in lines:
            if line.startswith("+CSQ:"):
                try:
                    return parse_csq_dbm(line)
                except ValueError:
                    return None
        return None

    def _read_registration(self, channel: AtChannel) -> bool | None:
        """True if any registration query says registered; None if none answered."""
        answered = False
        for query in self._dialect.registration_queries:
            try:
                lines = self._command(channel, query)
            except AtCommandError:
                continue
            for line in lines:
                try:
                    if parse_registration(line):
                        return True
                    answered = True
                except ValueError:
                    continue
        return False if answered else None

    # Reader-thread callbacks --------------------------------------------------

    def _on_urc(self, line: str) -> None:
        try:
            signal = self._dialect.parse_call_signal(line)
        except ValueError:
            logger.warning("%s: unreadable call line %s", self.name, mask_digit_runs(line))
            return
        match signal:
            case Ring():
                self._tracker.ring()
                self._consider_answering()
            case CallerId(number=number, presentation=presentation):
                self._tracker.caller_id(number, presentation)
            case CallEnd(cause=cause):
                self._tracker.released(cause)
                self.wake()  # the worker closes the call's audio
            case None:
                logger.debug("%s: URC %s", self.name, mask_digit_runs(line))

    def _consider_answering(self) -> None:
        if self._answer_after_rings <= 0:
            return
        call_id = self._tracker.call_id
        if call_id is None or self._tracker.state is not CallState.RINGING:
            return
        if self._tracker.ring_count >= self._answer_after_rings:
            self._answer_call_id = call_id
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
