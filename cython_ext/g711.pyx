# cython: language_level=3
"""G.711 A-law / mu-law companding for the B-channels (hot path).

Signal conventions: linear PCM is signed 16-bit little-endian, one channel;
a G.711 code is one octet per sample exactly as it travels in an E1
timeslot (A-law with the even bits inverted, mu-law with all bits inverted).
Any bytes-like object is accepted (bytes, bytearray, memoryview, array('h'),
a NumPy array...); PCM must hold an even number of bytes.

Bit-exact with Python 3.11's ``audioop.lin2alaw/alaw2lin/lin2ulaw/ulaw2lin``
(width 2) for all 65,536 samples and all 256 codes: the A-law encoder
truncates 16 -> 13 bits and the mu-law encoder 16 -> 14 bits before
companding, as audioop does (sox rounds). ``audioop`` is gone in Python 3.13;
this module replaces it. Tables are built at import from the same algorithm as
``cython_ext/reference/g711.py``: encoding is one lookup in an 8,192-entry
(A-law) or 16,384-entry (mu-law) table indexed by the truncated sample, so
the table stays in the L1 cache; decoding is one lookup in a 256-entry table
of little-endian sample pairs.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int16_t, uint8_t, uint16_t
from libc.string cimport memcpy
from cython_ext.buffers cimport byte_view as _byte_view

cdef uint8_t _ALAW_ENCODE[8192]
cdef uint8_t _ULAW_ENCODE[16384]
cdef uint16_t _ALAW_DECODE_LE[256]
cdef uint16_t _ULAW_DECODE_LE[256]
# Below this many samples the GIL is kept: releasing it costs more than it saves.
cdef Py_ssize_t _NOGIL_MIN_SAMPLES = 16384


cdef int _segment(int value, const int* ends) noexcept:
    cdef int index
    for index in range(8):
        if value <= ends[index]:
            return index
    return 8


cdef int _A_LAW_ENDS[8]
cdef int _MU_LAW_ENDS[8]
_A_LAW_ENDS[:] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]
_MU_LAW_ENDS[:] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]


cdef uint8_t _linear13_to_alaw(int pcm_value) noexcept:
    cdef int mask, segment, code
    if pcm_value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm_value = -pcm_value - 1
    segment = _segment(pcm_value, _A_LAW_ENDS)
    if segment >= 8:
        return <uint8_t>(0x7F ^ mask)
    code = segment << 4
    if segment < 2:
        code |= (pcm_value >> 1) & 0x0F
    else:
        code |= (pcm_value >> segment) & 0x0F
    return <uint8_t>(code ^ mask)


cdef uint8_t _linear14_to_ulaw(int pcm_value) noexcept:
    cdef int mask, segment, code
    if pcm_value < 0:
        pcm_value = -pcm_value
        mask = 0x7F
    else:
        mask = 0xFF
    if pcm_value > 32635:
        pcm_value = 32635
    pcm_value += 0x84 >> 2
    segment = _segment(pcm_value, _MU_LAW_ENDS)
    if segment >= 8:
        return <uint8_t>(0x7F ^ mask)
    code = (segment << 4) | ((pcm_value >> (segment + 1)) & 0x0F)
    return <uint8_t>(code ^ mask)


cdef int _alaw_to_linear16(int code) noexcept:
    cdef int value, segment
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


cdef int _ulaw_to_linear16(int code) noexcept:
    cdef int value
    code = ~code & 0xFF
    value = ((code & 0x0F) << 3) + 0x84
    value <<= (code & 0x70) >> 4
    return 0x84 - value if code & 0x80 else value - 0x84


cdef uint16_t _little_endian(int value) noexcept:
    """The native uint16 whose two bytes in memory are ``value`` little-endian."""
    cdef uint8_t pair[2]
    cdef uint16_t native
    pair[0] = <uint8_t>(value & 0xFF)
    pair[1] = <uint8_t>((value >> 8) & 0xFF)
    memcpy(&native, pair, 2)
    return native


cdef void _build_tables() noexcept:
    cdef int index
    for index in range(8192):
        # Index = the 13 high bits of the 16-bit sample, as an unsigned number.
        _ALAW_ENCODE[index] = _linear13_to_alaw(index - 8192 if index >= 4096 else index)
    for index in range(16384):
        _ULAW_ENCODE[index] = _linear14_to_ulaw(index - 16384 if index >= 8192 else index)
    for index in range(256):
        _ALAW_DECODE_LE[index] = _little_endian(_alaw_to_linear16(index))
        _ULAW_DECODE_LE[index] = _little_endian(_ulaw_to_linear16(index))


_build_tables()


cdef inline void _encode(
    const uint8_t* pcm, uint8_t* out, Py_ssize_t count, const uint8_t* table, int shift
) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint16_t sample
    for i in range(count):
        sample = <uint16_t>(pcm[2 * i] | (pcm[2 * i + 1] << 8))
        out[i] = table[sample >> shift]


cdef inline void _decode(
    const uint8_t* codes, uint8_t* out, Py_ssize_t count, const uint16_t* table
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        memcpy(out + 2 * i, &table[codes[i]], 2)


cdef bytes _encode_with(object pcm, const uint8_t* table, int shift):
    cdef const uint8_t[::1] view
    cdef const uint8_t* data
    cdef Py_ssize_t size
    if type(pcm) is bytes:
        # Fast path for the common case: no buffer acquisition (~100 ns a call).
        data = <const uint8_t*>PyBytes_AS_STRING(pcm)
        size = PyBytes_GET_SIZE(pcm)
    else:
        view = _byte_view(pcm)
        size = view.shape[0]
        data = &view[0] if size else NULL
    if size & 1:
        raise ValueError(
            f"16-bit PCM needs an even number of bytes, got {size} "
            "(a sample was split between two buffers?)"
        )
    cdef Py_ssize_t count = size >> 1
    cdef bytes result = PyBytes_FromStringAndSize(NULL, count)
    cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
    if count == 0:
        return result
    if count >= _NOGIL_MIN_SAMPLES:
        with nogil:
            _encode(data, out, count, table, shift)
    else:
        _encode(data, out, count, table, shift)
    return result


cdef bytes _decode_with(object codes, const uint16_t* table):
    cdef const uint8_t[::1] view
    cdef const uint8_t* data
    cdef Py_ssize_t count
    if type(codes) is bytes:
        data = <const uint8_t*>PyBytes_AS_STRING(codes)
        count = PyBytes_GET_SIZE(codes)
    else:
        view = _byte_view(codes)
        count = view.shape[0]
        data = &view[0] if count else NULL
    cdef bytes result = PyBytes_FromStringAndSize(NULL, 2 * count)
    cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
    if count == 0:
        return result
    if count >= _NOGIL_MIN_SAMPLES:
        with nogil:
            _decode(data, out, count, table)
    else:
        _decode(data, out, count, table)
    return result


def alaw_encode(pcm) -> bytes:
    """Signed 16-bit little-endian PCM to A-law codes (like ``audioop.lin2alaw(pcm, 2)``)."""
    return _encode_with(pcm, _ALAW_ENCODE, 3)


def ulaw_encode(pcm) -> bytes:
    """Signed 16-bit little-endian PCM to mu-law codes (like ``audioop.lin2ulaw(pcm, 2)``)."""
    return _encode_with(pcm, _ULAW_ENCODE, 2)


def alaw_decode(codes) -> bytes:
    """A-law codes to signed 16-bit little-endian PCM (like ``audioop.alaw2lin(codes, 2)``)."""
    return _decode_with(codes, _ALAW_DECODE_LE)


def ulaw_decode(codes) -> bytes:
    """Mu-law codes to signed 16-bit little-endian PCM (like ``audioop.ulaw2lin(codes, 2)``)."""
    return _decode_with(codes, _ULAW_DECODE_LE)
