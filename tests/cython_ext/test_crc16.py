"""CRC-16/X.25: the Cython hot path against the pure-Python reference."""

from hypothesis import given
from hypothesis import strategies as st

from cython_ext import crc16
from cython_ext.reference import crc16 as reference


def test_check_value_matches_the_catalogue() -> None:
    assert crc16.crc16_x25(b"123456789") == 0x906E
    assert reference.crc16_x25(b"123456789") == 0x906E


def test_frame_with_its_fcs_leaves_the_good_residue() -> None:
    frame = bytes.fromhex("00010303") + b"hello"
    fcs = crc16.crc16_x25(frame).to_bytes(2, "little")
    assert crc16.fcs_ok(frame + fcs)
    assert reference.fcs_ok(frame + fcs)
    corrupted = bytes([frame[0] ^ 0x01]) + frame[1:] + fcs
    assert not crc16.fcs_ok(corrupted)


def test_empty_input() -> None:
    assert crc16.crc16_x25(b"") == reference.crc16_x25(b"") == 0x0000
    assert not crc16.fcs_ok(b"")


@given(st.binary(max_size=600), st.integers(0, 0xFFFF))
def test_cython_matches_reference(data: bytes, start: int) -> None:
    assert crc16.crc16_x25(data) == reference.crc16_x25(data)
    assert crc16.crc16_x25_update(start, data) == reference.crc16_x25_update(start, data)
    assert crc16.crc16_x25(bytearray(data)) == crc16.crc16_x25(memoryview(data))
