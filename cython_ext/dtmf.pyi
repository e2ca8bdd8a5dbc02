BytesLike = bytes | bytearray | memoryview

ROW_FREQUENCIES: tuple[float, float, float, float]
COLUMN_FREQUENCIES: tuple[float, float, float, float]
DIGITS: str
BLOCK_SAMPLES_8KHZ: int
MIN_LEVEL_DBM0: float
DBM0_TO_DBOV: float
NORMAL_TWIST_DB: float
REVERSE_TWIST_DB: float
RELATIVE_PEAK_DB: float
MIN_POWER_FRACTION: float
SECOND_HARMONIC_DB: float
HALF_BALANCE_DB: float
BLOCK_NORMAL_TWIST_DB: float
BLOCK_REVERSE_TWIST_DB: float
FREQUENCY_TOLERANCE: float
REFINE_LOW: float
REFINE_HIGH: float
START_BLOCKS: int
END_BLOCKS: int

def block_samples(sample_rate: int) -> int: ...

class DtmfDetector:
    def __init__(self, sample_rate: int = 8000) -> None: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def block_size(self) -> int: ...
    @property
    def samples_seen(self) -> int: ...
    @property
    def digit_in_progress(self) -> str | None: ...
    def feed(self, pcm: BytesLike) -> list[tuple[str, int, int]]: ...
    def flush(self) -> list[tuple[str, int, int]]: ...
