"""Say when the gateway's clock cannot be trusted, in every event and in alarms.

A Raspberry Pi has no battery-backed clock: until NTP has set it, the time is
1970 or the last shutdown's, and so is every event's ``ts``. The kernel knows
(``firmware_py.clock.clock_synchronised``: adjtimex). While it says the clock
is not synchronised, the outbox marks each event it commits with
``"clock_unsynced": true`` in the envelope (the key is absent otherwise), so
a center never trusts such a timestamp. The changes are alarms:

* ``clock_unsynchronised`` (warning) when the gateway starts, or the clock
  loses synchronisation;
* ``clock_synchronised`` when it is synchronised again, with how far the wall
  clock moved against the monotonic clock since it was last seen
  unsynchronised (``step_s``: add it to the ``ts`` of the marked events to
  estimate their real time, if nothing else moved the clock meanwhile).

A kernel that cannot say (no adjtimex) is treated as synchronised: no marks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from firmware_py.clock import clock_synchronised
from gateway.events import AlarmSeverity, Event, GatewayAlarm

log = logging.getLogger("edge112.clock")


class ClockWatch:
    """Polled by the daemon's main loop; flips the outbox's mark and emits the alarms."""

    def __init__(
        self,
        mark: Callable[[bool], None],
        emit: Callable[[Event], object],
        probe: Callable[[], bool | None] = clock_synchronised,
    ) -> None:
        self._mark = mark
        self._emit = emit
        self._probe = probe
        self.unsynced = False
        self._offset = 0.0  # wall minus monotonic, when last seen unsynchronised

    def check(self) -> None:
        synced = self._probe() is not False
        offset = time.time() - time.monotonic()
        if not synced and not self.unsynced:
            self.unsynced = True
            self._offset = offset
            self._mark(True)
            log.warning("the system clock is not synchronised: events are marked clock_unsynced")
            self._emit(
                GatewayAlarm(
                    code="clock_unsynchronised",
                    severity=AlarmSeverity.WARNING,
                    message="the system clock is not synchronised (no NTP yet?): event "
                    "timestamps may be wrong; events carry clock_unsynced until it is",
                    detail={},
                )
            )
        elif not synced:
            self._offset = offset
        elif self.unsynced:
            self.unsynced = False
            self._mark(False)
            step = round(offset - self._offset, 3)
            log.info("the system clock is synchronised (it moved %+.3f s)", step)
            self._emit(
                GatewayAlarm(
                    code="clock_synchronised",
                    severity=AlarmSeverity.WARNING,
                    message=f"the system clock is synchronised again; it moved {step:+.3f} s, "
                    "so events marked clock_unsynced were stamped about that far off",
                    detail={"step_s": step},
                )
            )
