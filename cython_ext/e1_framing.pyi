from enum import IntEnum
from typing import NamedTuple

BytesLike = bytes | bytearray | memoryview

FRAME_OCTETS: int
FRAME_BITS: int
LINE_BITS_PER_SECOND: int
FRAMES_PER_SECOND: int
FAS_WORD: int
FAS_MASK: int
NFAS_BIT2: int
A_BIT: int
SI_BIT: int
MULTIFRAME_ALIGNMENT_SIGNAL: int
MULTIFRAME_FRAMES: int
SUB_MULTIFRAME_FRAMES: int
CRC4_POLY: int
LOSS_FAS_ERRORS: int
LOSS_NFAS_ERRORS: int
CRC4_LOSS_ERRORED_BLOCKS: int
CRC4_LOSS_WINDOW_BLOCKS: int
MULTIFRAME_SEARCH_FRAMES: int
CRC4_ABSENT_FRAMES: int
RAI_NFAS_WORDS: int
LOS_ZERO_BITS: int
LOS_CLEAR_WINDOW_OCTETS: int
LOS_CLEAR_ONES: int
AIS_WINDOW_OCTETS: int
AIS_MAX_ZEROS: int
AIS_WINDOWS: int
SLIP_WINDOW_FRAMES: int
COUNTER_NAMES: tuple[str, ...]

class FramerEventKind(IntEnum):
    LOS_ON = 1
    LOS_OFF = 2
    AIS_ON = 3
    AIS_OFF = 4
    ALIGNED = 5
    ALIGNMENT_LOST = 6
    SLIP = 7
    RAI_ON = 8
    RAI_OFF = 9
    MULTIFRAME_ALIGNED = 10
    CRC4_ABSENT = 11

class AlignmentLoss(IntEnum):
    FAS_ERRORS = 1
    NFAS_ERRORS = 2
    CRC4_ERRORS = 3

class FrameRun(NamedTuple):
    bit: int
    frames: bytes
    @property
    def frame_count(self) -> int: ...

class FramerEvent(NamedTuple):
    bit: int
    kind: FramerEventKind
    value: int

def crc4(data: BytesLike, register: int = ...) -> int: ...

class E1Framer:
    crc4: bool
    bit_search: bool
    octets_in: int
    frames: int
    fas_errors: int
    nfas_errors: int
    crc4_blocks: int
    crc4_errors: int
    e_bits: int
    alignments: int
    losses: int
    slips: int
    los: bool
    ais: bool
    aligned: bool
    rai: bool
    multiframe_aligned: bool
    crc4_absent: bool
    def __init__(self, crc4: bool = ..., bit_search: bool = ...) -> None: ...
    @property
    def bit_offset(self) -> int: ...
    def reset(self) -> None: ...
    def counters(self) -> dict[str, int]: ...
    def feed(self, data: BytesLike) -> tuple[list[FrameRun], list[FramerEvent]]: ...

def frame_all(
    data: BytesLike, crc4: bool = ..., bit_search: bool = ...
) -> tuple[list[FrameRun], list[FramerEvent], dict[str, int]]: ...
