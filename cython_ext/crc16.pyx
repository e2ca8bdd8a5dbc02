# cython: language_level=3
"""CRC-16/X.25 (HDLC FCS) with a 256-entry table; see reference/crc16.py."""

from libc.stdint cimport uint16_t, uint8_t

cdef uint16_t _TABLE[256]
cdef int _i, _bit
cdef uint16_t _crc
for _i in range(256):
    _crc = _i
    for _bit in range(8):
        if _crc & 1:
            _crc = (_crc >> 1) ^ 0x8408
        else:
            _crc = _crc >> 1
    _TABLE[_i] = _crc

INIT = 0xFFFF
FINAL_XOR = 0xFFFF
GOOD_RESIDUE = 0xF0B8


cdef inline uint16_t _update(uint16_t crc, const uint8_t[::1] data) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(data.shape[0]):
        crc = (crc >> 8) ^ _TABLE[(crc ^ data[i]) & 0xFF]
    return crc


def crc16_x25_update(int crc, const uint8_t[::1] data not None) -> int:
    """Advance a CRC register (no final XOR) over ``data``."""
    if data.shape[0] == 0:
        return crc & 0xFFFF
    return _update(<uint16_t>(crc & 0xFFFF), data)


def crc16_x25(const uint8_t[::1] data not None) -> int:
    """The FCS of ``data`` as a number (send it little-endian)."""
    if data.shape[0] == 0:
        return 0x0000
    return _update(0xFFFF, data) ^ 0xFFFF


def fcs_ok(const uint8_t[::1] frame_with_fcs not None) -> bool:
    """True when a frame that ends in its two FCS octets is intact."""
    if frame_with_fcs.shape[0] == 0:
        return False
    return _update(0xFFFF, frame_with_fcs) == 0xF0B8
