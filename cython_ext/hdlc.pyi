from typing import NamedTuple

BytesLike = bytes | bytearray | memoryview

MSB_FIRST: str
LSB_FIRST: str
BIT_ORDERS: tuple[str, str]
FLAG: int
FCS_OCTETS: int
MIN_FRAME_OCTETS: int
DEFAULT_MAX_FRAME_OCTETS: int
COUNTER_NAMES: tuple[str, ...]

class HdlcFrame(NamedTuple):
    bit_offset: int
    data: bytes
    @property
    def octet_index(self) -> int: ...

def check_bit_order(bit_order: str) -> str: ...

class HdlcDeframer:
    bit_order: str
    max_frame_octets: int
    frames: int
    bad_fcs: int
    aborts: int
    too_short: int
    too_long: int
    not_aligned: int
    bytes_in: int
    def __init__(self, bit_order: str = ..., max_frame_octets: int = ...) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def reset(self) -> None: ...
    def feed(self, data: BytesLike) -> list[HdlcFrame]: ...

def deframe(data: BytesLike, bit_order: str = ...) -> tuple[list[HdlcFrame], dict[str, int]]: ...
