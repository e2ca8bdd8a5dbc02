"""Per-channel ring buffer: the last ``capacity`` bytes of a stream.

Each B-channel keeps the last few seconds of its audio (signed 16-bit
little-endian PCM, 16,000 bytes a second at 8 kHz) so that an event such as
a DTMF digit or the first speech can be saved together with what led up to
it. Writes never block and never fail: the oldest bytes are overwritten.
The buffer is byte-oriented; give PCM an even capacity so that samples are
never split when the buffer wraps.

This is the slow, obviously-correct model of ``cython_ext/ringbuffer.pyx``.
"""

from __future__ import annotations

BytesLike = bytes | bytearray | memoryview


class RingBuffer:
    """The last ``capacity_bytes`` bytes written, oldest first."""

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        self._capacity = capacity_bytes
        self._data = bytearray()
        self._total_written = 0

    @property
    def capacity(self) -> int:
        """The most bytes the buffer holds."""
        return self._capacity

    @property
    def total_written(self) -> int:
        """Bytes written since creation, including those overwritten since."""
        return self._total_written

    def write(self, data: BytesLike) -> None:
        """Append ``data``, dropping the oldest bytes beyond the capacity."""
        chunk = memoryview(data).cast("B")
        self._data += chunk
        del self._data[: max(0, len(self._data) - self._capacity)]
        self._total_written += len(chunk)

    def read_all(self) -> bytes:
        """Everything held, oldest byte first; the buffer is left as it is."""
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)
