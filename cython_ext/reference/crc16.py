"""CRC-16/X.25, the HDLC frame check sequence of the ISDN D-channel (Q.921).

Parameters (the "CRC-16/X-25" entry of the CRC catalogue): width 16,
polynomial 0x1021 processed reflected (0x8408), init 0xFFFF, input and output
reflected, final XOR 0xFFFF. Check value for b"123456789" is 0x906E. The FCS
is sent least significant octet first; running the CRC over a frame *and* its
FCS leaves the residue 0xF0B8 before the final XOR (0x0F47 after it).
"""

from __future__ import annotations

INIT = 0xFFFF
FINAL_XOR = 0xFFFF
GOOD_RESIDUE = 0xF0B8
_REFLECTED_POLY = 0x8408


def crc16_x25_update(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Advance a CRC register (no final XOR) over ``data``."""
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ _REFLECTED_POLY if crc & 1 else crc >> 1
    return crc & 0xFFFF


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """The FCS of ``data`` as a number (send it little-endian)."""
    return crc16_x25_update(INIT, data) ^ FINAL_XOR


def fcs_ok(frame_with_fcs: bytes | bytearray | memoryview) -> bool:
    """True when a frame that ends in its two FCS octets is intact."""
    return crc16_x25_update(INIT, frame_with_fcs) == GOOD_RESIDUE
