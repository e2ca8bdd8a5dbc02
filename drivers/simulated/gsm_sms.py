"""The simulated modem's message storage: "SM" (the SIM) and "SR" (status reports), with limits.

Messages are kept as the PDU hex the network delivered, with the 27.005
``<stat>`` (0 received unread, 1 received read) and an index per memory, the
lowest free one first, as a SIM hands them out. A full memory refuses the
next message (the network keeps it and tries again later; the simulator
counts it in ``refused``). ``deletions`` records every ``AT+CMGD`` with its
``time.monotonic()``, and ``on_delete`` (when set) is called with the
memory and index as each delete arrives, so a test or a scenario can look
at the world at that moment (was the message's event committed yet?).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SIM_CAPACITY = 20  # typical SIM "SM" memory: 20-50 messages
STATUS_REPORT_CAPACITY = 10
UNREAD, READ = 0, 1


@dataclass
class StoredMessage:
    index: int
    pdu: str
    status: int = UNREAD

    @property
    def tpdu_octets(self) -> int:
        """The ``<length>`` of +CMGR/+CMGL: the PDU's octets without the SMSC field."""
        octets = len(self.pdu) // 2
        try:
            smsc_octets = int(self.pdu[:2], 16)
        except ValueError:  # not a PDU at all (a fault a test injects): any length will do
            return octets
        return max(0, octets - 1 - smsc_octets)


@dataclass
class SimStorage:
    """Message memories by name ("SM", "SR"); thread-safe."""

    capacities: dict[str, int] = field(
        default_factory=lambda: {"SM": SIM_CAPACITY, "SR": STATUS_REPORT_CAPACITY}
    )
    refused: int = 0
    deletions: list[tuple[str, int, float]] = field(default_factory=list)
    on_delete: Callable[[str, int], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._memories: dict[str, dict[int, StoredMessage]] = {name: {} for name in self.capacities}

    def store(self, memory: str, pdu: str) -> int | None:
        """Keep ``pdu``; its index, or None when the memory is full."""
        with self._lock:
            messages = self._memories[memory]
            if len(messages) >= self.capacities[memory]:
                self.refused += 1
                return None
            index = next(i for i in range(len(messages) + 1) if i not in messages)
            messages[index] = StoredMessage(index, pdu)
            return index

    def read(self, memory: str, index: int) -> StoredMessage | None:
        """The message at ``index`` as it was (stored: now marked read), or None."""
        with self._lock:
            message = self._memories.get(memory, {}).get(index)
            if message is None:
                return None
            before = StoredMessage(message.index, message.pdu, message.status)
            message.status = READ
            return before

    def delete(self, memory: str, index: int) -> None:
        if self.on_delete is not None:
            self.on_delete(memory, index)
        with self._lock:
            self._memories.get(memory, {}).pop(index, None)
            self.deletions.append((memory, index, time.monotonic()))

    def listing(self, memory: str) -> list[StoredMessage]:
        with self._lock:
            return [self._memories[memory][i] for i in sorted(self._memories.get(memory, {}))]

    def usage(self, memory: str) -> tuple[int, int]:
        with self._lock:
            return len(self._memories.get(memory, {})), self.capacities.get(memory, 0)

    def knows(self, memory: str) -> bool:
        return memory in self.capacities

    def stored_pdus(self, memory: str = "SM") -> list[str]:
        return [message.pdu for message in self.listing(memory)]
