"""A modem that replays a recorded transcript (``drivers.transcript``) on a pseudo-terminal.

The gateway's polls depend on timing, so a replay cannot expect the gateway
to repeat a session byte for byte. ``build_script`` splits the recording in
two, and ``ReplayedModem`` plays both parts against whatever the gateway sends::

    transcript ──> commands (to_modem, cut at CR) ─┐
               └─> lines (from_modem, cut at CR/LF)┴─> classify_line per command in flight
                    │                                  (drivers.at_channel)
                    ├─ echo, information, final result ─> responses["AT+CLCC"] = [(t, bytes), ...]
                    └─ everything else (URCs, garbage) ─> timeline = [(t, bytes), ...]

    gateway (pyserial) <-> /dev/pts/N (raw) <-> PTY master <-> ReplayedModem thread
        command in  -> echo (while echo is on) + the recorded response, or ERROR
        timeline    -> each item written (t - t_first_command) / speed after the
                       gateway's first command arrived

A command recorded several times with different responses (``AT+CLCC``
ringing, then active, then a different call) is answered from the stretch of
the timeline the replay is in (a *segment*: between two timeline items, say
between the second RING and NO CARRIER): the responses recorded in that
segment in recorded order, the last one repeating; in a segment where it
was never recorded, the response recorded nearest in time. So a gateway
that keeps the recorded pace gets every response in recorded order, and one
that polls faster or slower still sees each call in the state the timeline
has it in (pure recorded order would hand a slow poller a stale "active"
call, or a fast poller an early "gone").

Echo works as on a real modem: on until ``ATE0`` (``ATE1``/``ATE`` turn it
back on, ``ATZ`` restores the start), if the transcript shows echo at all.
A command never recorded is answered ``ERROR`` and listed in ``unanswered``.
A recorded command that got no final result code (it timed out in the
field) gets what was recorded and then silence, as it did in the field.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from drivers.at_channel import LineRole, PendingCommand, classify_line, decode_line
from drivers.simulated.links import open_linked_pty, remove_link
from drivers.transcript import Direction, Transcript

logger = logging.getLogger("edge112.drivers.simulated")

POLL_S = 0.05
WRITE_STALL_S = 0.5
MAX_COMMAND_BYTES = 512
UNKNOWN_COMMAND_REPLY = b"\r\nERROR\r\n"

_LINE = re.compile(rb"([^\r\n]+)(\r\r\n|\r\n|\n\r|\r|\n|$)")
_ECHO_SETTING = re.compile(r"ATE([01]?)")


@dataclass(frozen=True)
class RecordedLine:
    t: float
    text: bytes  # as on the wire, terminator removed (garbage included)
    end: bytes  # the terminator it came with: b"\r\n", b"\r\r\n", ...

    def framed(self) -> bytes:
        """The line as a modem sends it: the terminator before and after."""
        return self.end + self.text + self.end


@dataclass(frozen=True)
class RecordedCommand:
    t: float
    command: str


@dataclass
class ReplayScript:
    """What a transcript says the modem does: responses by command, and a timeline.

    ``responses[command]`` holds ``(t, segment, bytes)``: when the command
    was sent, how many timeline items had gone out by then, and the reply.
    """

    responses: dict[str, list[tuple[float, int, bytes]]] = field(default_factory=dict)
    timeline: list[tuple[float, bytes]] = field(default_factory=list)
    echo: bool = False  # the transcript shows echoed commands
    first_command_t: float = 0.0
    _used: dict[tuple[str, int], int] = field(default_factory=dict)

    def response(self, command: str, segment: int, elapsed_recorded_s: float) -> bytes | None:
        """The recorded reply to ``command`` once ``segment`` timeline items are out.

        Replies recorded in the same segment come in recorded order, the last
        repeating; with none there, the reply recorded nearest in time.
        None if the command was never recorded.
        """
        key = command_key(command)
        recorded = self.responses.get(key)
        if not recorded:
            return None
        same = [data for _t, recorded_segment, data in recorded if recorded_segment == segment]
        if same:
            used = self._used.get((key, segment), 0)
            self._used[(key, segment)] = used + 1
            return same[min(used, len(same) - 1)]
        now = self.first_command_t + elapsed_recorded_s
        return min(recorded, key=lambda item: abs(item[0] - now))[2]


def command_key(command: str) -> str:
    return command.strip().upper()


def recorded_commands(transcript: Transcript) -> list[RecordedCommand]:
    """Commands the gateway sent, each timed by the chunk that carried its final CR."""
    commands: list[RecordedCommand] = []
    pending = b""
    for chunk in transcript.of(Direction.TO_MODEM):
        *complete, pending = (pending + chunk.data).split(b"\r")
        for raw in complete:
            text = raw.replace(b"\n", b"").decode("ascii", "replace").strip()
            if text:
                commands.append(RecordedCommand(chunk.t, text))
    return commands


def recorded_lines(transcript: Transcript) -> list[RecordedLine]:
    """Lines the modem sent, each timed by the chunk that completed it."""
    stream = bytearray()
    ends: list[tuple[int, float]] = []  # (end offset of chunk, its t)
    for chunk in transcript.of(Direction.FROM_MODEM):
        stream += chunk.data
        ends.append((len(stream), chunk.t))
    offsets = [end for end, _ in ends]
    lines = []
    for match in _LINE.finditer(bytes(stream)):
        chunk_index = min(bisect.bisect_left(offsets, match.end()), len(ends) - 1)
        lines.append(RecordedLine(ends[chunk_index][1], match.group(1), match.group(2)))
    return lines


class _ScriptBuilder:
    """Walks commands and lines in time order, pairing lines with the command in flight."""

    def __init__(self) -> None:
        self.script = ReplayScript()
        self._pending: PendingCommand | None = None
        self._pending_t = 0.0
        self._response = bytearray()

    def command(self, recorded: RecordedCommand) -> None:
        self._close_response()
        self._pending = PendingCommand(recorded.command)
        self._pending_t = recorded.t

    def line(self, recorded: RecordedLine) -> None:
        text, _problem = decode_line(recorded.text)
        role = classify_line(text, self._pending) if text else LineRole.UNKNOWN
        if self._pending is None or role in (LineRole.UNSOLICITED, LineRole.UNKNOWN):
            self.script.timeline.append((recorded.t, recorded.framed()))
        elif role is LineRole.ECHO:
            self.script.echo = True
        else:
            self._response += recorded.framed()
            if role in (LineRole.FINAL_OK, LineRole.FINAL_ERROR):
                self._close_response()

    def _close_response(self) -> None:
        if self._pending is not None:
            key = command_key(self._pending.command)
            segment = len(self.script.timeline)
            self.script.responses.setdefault(key, []).append(
                (self._pending_t, segment, bytes(self._response))
            )
        self._pending = None
        self._response.clear()


def build_script(transcript: Transcript) -> ReplayScript:
    """Split ``transcript`` into a command -> responses table and a timeline of the rest."""
    commands = recorded_commands(transcript)
    lines = recorded_lines(transcript)
    # Merge by time; a command goes before lines of the same instant (its reply follows it).
    merged: list[tuple[float, int, RecordedCommand | RecordedLine]] = [
        *((c.t, 0, c) for c in commands),
        *((line.t, 1, line) for line in lines),
    ]
    merged.sort(key=lambda item: (item[0], item[1]))
    builder = _ScriptBuilder()
    for _t, _order, item in merged:
        if isinstance(item, RecordedCommand):
            builder.command(item)
        else:
            builder.line(item)
    builder.command(RecordedCommand(0.0, ""))  # close the last response
    script = builder.script
    script.responses.pop("", None)
    script.first_command_t = commands[0].t if commands else 0.0
    return script


class ReplayedModem:
    """The modem of ``transcript`` behind the pseudo-terminal linked at ``link``.

    ``speed`` > 1 plays the timeline faster. ``done`` is set once the last
    timeline item is out; ``unanswered`` lists (once each) the commands the
    recording had no response for.
    """

    def __init__(self, transcript: Transcript, link: str | Path, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.transcript = transcript
        self.script = build_script(transcript)
        self.speed = speed
        self.done = threading.Event()
        self.unanswered: list[str] = []
        self._echo = self.script.echo
        self._started_at: float | None = None
        self._next_item = 0
        self._stopped = threading.Event()
        self._master, self._slave, self.device, self.link = open_linked_pty(link)
        if not self.script.timeline:
            self.done.set()
        self._thread = threading.Thread(target=self._serve, name="edge112-replay", daemon=True)
        self._thread.start()
        logger.info("replaying %s on %s -> %s", transcript.path, self.link, self.device)

    def __enter__(self) -> ReplayedModem:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)
        os.close(self._master)
        os.close(self._slave)
        remove_link(self.link, self.device)

    # Serving thread ----------------------------------------------------------

    def _serve(self) -> None:
        pending = bytearray()
        while not self._stopped.is_set():
            readable, _, _ = select.select([self._master], [], [], self._wait_s())
            if readable:
                try:
                    pending += os.read(self._master, 4096)
                except OSError:
                    pending.clear()  # EIO while no slave side is open
                pending = self._take_commands(pending)
            self._play_due_items()

    def _wait_s(self) -> float:
        if self._started_at is None or self.done.is_set():
            return POLL_S
        due = self._due_at(self.script.timeline[self._next_item][0])
        return min(POLL_S, max(0.0, due - time.monotonic()))

    def _due_at(self, t: float) -> float:
        assert self._started_at is not None
        return self._started_at + (t - self.script.first_command_t) / self.speed

    def _elapsed_recorded_s(self) -> float:
        assert self._started_at is not None
        return (time.monotonic() - self._started_at) * self.speed

    def _play_due_items(self) -> None:
        timeline = self.script.timeline
        if self._started_at is None:
            return
        while self._next_item < len(timeline):
            t, data = timeline[self._next_item]
            if self._due_at(t) > time.monotonic():
                return
            self._write(data)
            self._next_item += 1
        self.done.set()

    def _take_commands(self, pending: bytearray) -> bytearray:
        *commands, rest = pending.split(b"\r")
        for raw in commands:
            command = raw.replace(b"\n", b"").decode("ascii", "replace").strip()
            if command.upper().startswith("AT"):
                self._answer(command)
        return rest if len(rest) <= MAX_COMMAND_BYTES else bytearray()

    def _answer(self, command: str) -> None:
        if self._started_at is None:
            self._started_at = time.monotonic()
            self._play_due_items()  # what the modem said before the first command
        if self._echo:
            self._write(command.encode("ascii", "replace") + b"\r")
        self._apply_echo_setting(command)
        response = self.script.response(command, self._next_item, self._elapsed_recorded_s())
        if response is None:
            if command not in self.unanswered:
                self.unanswered.append(command)
            logger.info("replay: no recording for %s; answering ERROR", command)
            response = UNKNOWN_COMMAND_REPLY
        self._write(response)

    def _apply_echo_setting(self, command: str) -> None:
        key = command_key(command)
        match = _ECHO_SETTING.fullmatch(key)
        if match:
            self._echo = self.script.echo and match.group(1) != "0"
        elif key == "ATZ":
            self._echo = self.script.echo

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stopped.is_set():
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                _, writable, _ = select.select([], [self._master], [], WRITE_STALL_S)
                if not writable:
                    logger.warning("replay: nobody reads; output dropped")
                    return
            except OSError as exc:
                logger.debug("replay: write failed: %s", exc)
                return
