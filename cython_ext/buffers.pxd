# Buffer helpers shared by the hot paths (cimported, inlined into each module).
from libc.stdint cimport uint8_t


cdef inline const uint8_t[::1] byte_view(object data):
    """A flat byte view of any contiguous buffer (int16 arrays included), without a copy."""
    if isinstance(data, (bytes, bytearray)):
        return data
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view
