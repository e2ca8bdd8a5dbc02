"""Call control for the GSM driver: caller id from AT+CLCC, auto-answer, call confirmation, audio.

``CallControl`` is the half of ``drivers.gsm.modem.GsmModemDriver`` that
acts on the one call a modem carries, in the worker thread:

    first ring        -> AT+CLCC at once: the number, should +CLIP never come (after a reset,
                         or ATA on the first ring suppressing it); incoming voice records only
    ring N reached    -> ATA once the call is offered (caller id known, or the grace time over)
    every poll        -> AT+CLCC: an answer or an end whose URC never came (or was garbled)
    answered          -> the call's audio on (dialect commands, sink); ended -> off again
    events            -> offers and ends noted: for auto-answer, and to link an AML SMS to the
                         call from the same number (up, or ended within AML_CALL_LINK_S)
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from drivers.at_channel import AtChannel, AtCommandError, AtError, AtTimeoutError
from drivers.gsm.call_audio import ModemCallAudio
from drivers.gsm.dialects import GenericDialect, caller_from_record
from drivers.gsm.responses import CallRecord, CallStatus, incoming_voice_calls
from gateway.calls import CallState, CallTracker
from gateway.events import CallAbandoned, CallEnded, CallOffered, EndCause, Event

if TYPE_CHECKING:
    from gateway.lines import LineDriverBase

    _Base = LineDriverBase[AtChannel]
else:
    _Base = object

logger = logging.getLogger("edge112.drivers.gsm")

CALL_GONE_AFTER_POLLS = 2  # AT+CLCC polls without the call before it counts as ended
AML_CALL_LINK_S = 300.0  # an AML SMS links to a call from its number up to this long after

# Final result codes of ATA that mean the caller is gone.
ANSWER_FAILURES = {
    "NO CARRIER": EndCause.REMOTE_HANGUP,
    "BUSY": EndCause.BUSY,
    "NO ANSWER": EndCause.NO_ANSWER,
}


class CallControl(_Base):
    """Mixed into ``GsmModemDriver``, which sets these attributes up."""

    _tracker: CallTracker
    _dialect: GenericDialect
    _answer_after_rings: int
    _answer_call_id: str | None
    _lookup_caller_for: str | None
    _offered: str | None
    _recent_calls: dict[str, tuple[str, float]]
    _call_missing: tuple[str, int] | None
    _call_audio: ModemCallAudio | None
    _audio_call_id: str | None

    if TYPE_CHECKING:

        def _command(self, channel: AtChannel, command: str) -> list[str]: ...

    # Periodic jobs (worker thread) ------------------------------------------

    def _look_up_caller(self, channel: AtChannel) -> None:
        """On a call's first ring, ask AT+CLCC for the number (+CLIP may never come)."""
        call_id, self._lookup_caller_for = self._lookup_caller_for, None
        if call_id is None or self._tracker.call_id != call_id or self._offered == call_id:
            return
        self._take_caller_from_records(channel, call_id)

    def _take_caller_from_records(self, channel: AtChannel, call_id: str) -> list[CallRecord]:
        records = incoming_voice_calls(self._command(channel, "AT+CLCC"))
        if self._offered != call_id and self._tracker.call_id == call_id:
            for record in records:
                caller = caller_from_record(record)
                if caller is not None:
                    self._tracker.caller_id(caller.number, caller.presentation)
                    break
        return records

    def _answer_if_due(self, channel: AtChannel) -> None:
        call_id = self._answer_call_id
        if call_id is None:
            return
        if self._tracker.call_id != call_id or self._tracker.state is not CallState.RINGING:
            self._answer_call_id = None
            return
        if self._offered != call_id:
            return  # wait for the caller id (or the grace time): ATA now could suppress +CLIP
        self._answer_call_id = None
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
        records = self._take_caller_from_records(channel, call_id)
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

    # Events -------------------------------------------------------------------

    def _emit_safely(self, event: Event) -> None:
        """Every event goes out here; offers and call ends are noted for auto-answer and AML."""
        if isinstance(event, CallOffered):
            self._offered = event.call_id
            now = time.monotonic()
            for number, (_, seen_at) in list(self._recent_calls.items()):
                if now - seen_at > AML_CALL_LINK_S:
                    del self._recent_calls[number]  # only calls an AML SMS may still link to
            if event.number:
                self._recent_calls[event.number] = (event.call_id, now)
        elif isinstance(event, CallEnded | CallAbandoned):
            for number, (call_id, _) in list(self._recent_calls.items()):
                if call_id == event.call_id:
                    self._recent_calls[number] = (call_id, time.monotonic())
        super()._emit_safely(event)

    def _call_for_number(self, number: str | None) -> str | None:
        """The call from ``number`` that is up or ended within ``AML_CALL_LINK_S``."""
        if not number:
            return None
        found = self._recent_calls.get(number)
        if found is None:
            return None
        call_id, seen_at = found
        if self._tracker.call_id == call_id or time.monotonic() - seen_at <= AML_CALL_LINK_S:
            return call_id
        return None

    def _consider_answering(self) -> None:
        if self._answer_after_rings <= 0:
            return
        call_id = self._tracker.call_id
        if call_id is None or self._tracker.state is not CallState.RINGING:
            return
        if self._tracker.ring_count >= self._answer_after_rings:
            self._answer_call_id = call_id
            self.wake()
