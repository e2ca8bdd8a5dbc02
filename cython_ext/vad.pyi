BytesLike = bytes | bytearray | memoryview

FRAME_MS: int
SILENCE_DBOV: float
CLIP_LEVEL: int
NOISE_WINDOW_FRAMES: int
NOISE_WINDOWS: int
STATIONARY_FRAMES: int
STATIONARY_SPREAD_DB: float
ACTIVITY_MARGIN_DB: float
ACTIVITY_MIN_DBOV: float
ONSET_FRAMES: int
ONSET_SPREAD_DB: float
HANGOVER_FRAMES: int
HIGHPASS_HZ: float
SMOOTHING_FRAMES: int

class VoiceActivity:
    def __init__(self, sample_rate: int = 8000) -> None: ...
    @property
    def frame_length(self) -> int: ...
    @property
    def total_frames(self) -> int: ...
    @property
    def speech_frames(self) -> int: ...
    @property
    def first_speech_sample(self) -> int | None: ...
    @property
    def in_speech(self) -> bool: ...
    @property
    def level_dbov(self) -> float: ...
    @property
    def noise_floor_dbov(self) -> float: ...
    @property
    def clipped_samples(self) -> int: ...
    def feed(self, pcm: BytesLike) -> bool: ...
