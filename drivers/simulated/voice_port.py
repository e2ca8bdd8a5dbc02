"""The simulated modem's audio port: a second pseudo-terminal carrying call audio in real time.

Real modems put call audio on a separate serial port as 8 kHz PCM16 once
voice is switched on (``AT+QPCMV=1,0`` and kin). ``SimulatedVoicePort``
does the same on a raw PTY linked at a path of your choice::

    gateway (pyserial) <-> /dev/pts/M (raw) <-> PTY master <-> voice thread
        <- one 320-byte frame every 20 ms of the answered call (CallerVoice.next_frame)
        -> whatever the gateway writes: the caller hears it (CallerVoice.hear)

Frames are paced by ``time.monotonic`` deadlines counted from the answer,
so a late wake-up writes the overdue frames at once instead of drifting.
While the call is answered but voice is off, the caller's script still
advances (what they said is lost, as on a real modem); frames are written
only while it is on. Output nobody reads is dropped a whole frame at a
time, so the stream never loses sample alignment.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from drivers.simulated.caller_audio import FRAME_S, CallerVoice
from drivers.simulated.links import open_linked_pty, remove_link

logger = logging.getLogger("edge112.drivers.simulated")

READ_BYTES = 4096
JOIN_TIMEOUT_S = 1.0

# The call whose audio flows now and whether voice is switched on; None: no answered call.
CurrentCall = Callable[[], tuple[CallerVoice, bool] | None]


class SimulatedVoicePort:
    """The audio PTY linked at ``link``; ``current_call`` says whose audio to carry."""

    def __init__(self, link: str | Path, current_call: CurrentCall, *, name: str) -> None:
        self.name = name
        self._current_call = current_call
        self._stopped = threading.Event()
        self._fd_lock = threading.Lock()
        self._unsent = b""  # the tail of a frame the PTY did not take yet
        self._master, self._slave, self.device, self.link = open_linked_pty(link)
        self._thread = threading.Thread(target=self._serve, name="edge112-sim-voice", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        """Stop the thread and close the PTY (the gateway's reads fail: a vanished port)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)
        with self._fd_lock:
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        remove_link(self.link, self.device)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            current = self._current_call()
            wait_s = FRAME_S
            if current is not None:
                voice, voice_on = current
                self._speak(voice, voice_on)
                wait_s = max(0.0, voice.next_deadline() - time.monotonic())
            elif self._unsent:
                self._send(b"")
            heard = self._receive(wait_s)
            if heard:
                self._pass_to_caller(heard)

    def _pass_to_caller(self, heard: bytes) -> None:
        """Playback goes to the call up now (it may have been answered while we waited)."""
        current = self._current_call()
        if current is not None:
            current[0].hear(heard)

    def _speak(self, voice: CallerVoice, voice_on: bool) -> None:
        """Say every frame that is due by now; write them while voice is on."""
        for _ in range(voice.frames_due(time.monotonic())):
            frame = voice.next_frame()
            if voice_on and self._send(frame):
                voice.log.frames_sent += 1

    def _send(self, frame: bytes) -> bool:
        """Write ``frame`` after any unsent tail; drop it whole if the tail is still stuck."""
        with self._fd_lock:
            if self._master < 0:
                return False
            if self._unsent:
                self._unsent = self._write_some(self._unsent)
                if self._unsent:
                    return False
            if frame:
                self._unsent = self._write_some(frame)
        return bool(frame)

    def _write_some(self, data: bytes) -> bytes:
        """Write what the PTY takes now; return the rest."""
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            return data
        except OSError as exc:
            logger.debug("%s: audio write failed: %s", self.name, exc)
            return b""
        return data[written:]

    def _receive(self, wait_s: float) -> bytes:
        """What the gateway wrote, waiting at most ``wait_s`` for it."""
        try:
            readable, _, _ = select.select([self._master], [], [], wait_s)
            if readable:
                return os.read(self._master, READ_BYTES)
        except (OSError, ValueError):  # closed under us, or EIO with no slave open
            time.sleep(wait_s)
        return b""
