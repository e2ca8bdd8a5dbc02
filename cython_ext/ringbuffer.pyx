# cython: language_level=3
"""Per-channel ring buffer: the last ``capacity`` bytes of a stream (hot path).

Each B-channel keeps the last few seconds of its audio (signed 16-bit
little-endian PCM, 16,000 bytes a second at 8 kHz) so that an event such as
a DTMF digit or the first speech can be saved together with what led up to
it. Writes never block and never fail: the oldest bytes are overwritten.
The buffer is byte-oriented; give PCM an even capacity so that samples are
never split when the buffer wraps. See ``reference/ringbuffer.py``.

Memory layout: one ``malloc``'d block of ``capacity`` bytes; ``_head`` is
where the next byte goes; once full, the oldest byte sits at ``_head``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t
from libc.string cimport memcpy
from cython_ext.buffers cimport byte_view as _byte_view


cdef class RingBuffer:
    """The last ``capacity_bytes`` bytes written, oldest first."""

    cdef uint8_t* _buffer
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _head
    cdef Py_ssize_t _size
    cdef unsigned long long _total_written

    def __init__(self, Py_ssize_t capacity_bytes):
        if capacity_bytes <= 0:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        PyMem_Free(self._buffer)
        self._buffer = <uint8_t*>PyMem_Malloc(capacity_bytes)
        if self._buffer == NULL:
            raise MemoryError(f"cannot allocate a {capacity_bytes}-byte ring buffer")
        self._capacity = capacity_bytes
        self._head = 0
        self._size = 0
        self._total_written = 0

    def __dealloc__(self):
        PyMem_Free(self._buffer)

    @property
    def capacity(self) -> int:
        """The most bytes the buffer holds."""
        return self._capacity

    @property
    def total_written(self) -> int:
        """Bytes written since creation, including those overwritten since."""
        return self._total_written

    def __len__(self) -> int:
        return self._size

    cdef void _append(self, const uint8_t* data, Py_ssize_t count) noexcept:
        cdef Py_ssize_t first
        self._total_written += <unsigned long long>count
        if count >= self._capacity:
            # Only the tail survives; the buffer then starts at offset 0.
            memcpy(self._buffer, data + count - self._capacity, self._capacity)
            self._head = 0
            self._size = self._capacity
            return
        first = self._capacity - self._head
        if first > count:
            first = count
        memcpy(self._buffer + self._head, data, first)
        if count > first:
            memcpy(self._buffer, data + first, count - first)
        self._head += count
        if self._head >= self._capacity:
            self._head -= self._capacity
        self._size += count
        if self._size > self._capacity:
            self._size = self._capacity

    def write(self, data) -> None:
        """Append ``data``, dropping the oldest bytes beyond the capacity."""
        cdef const uint8_t[::1] view
        if type(data) is bytes:
            self._append(<const uint8_t*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        view = _byte_view(data)
        if view.shape[0]:
            self._append(&view[0], view.shape[0])

    def read_all(self) -> bytes:
        """Everything held, oldest byte first; the buffer is left as it is."""
        cdef bytes result = PyBytes_FromStringAndSize(NULL, self._size)
        cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
        cdef Py_ssize_t start = self._head - self._size
        if start >= 0:
            memcpy(out, self._buffer + start, self._size)
        else:
            start += self._capacity
            memcpy(out, self._buffer + start, self._capacity - start)
            memcpy(out + self._capacity - start, self._buffer, self._head)
        return result
