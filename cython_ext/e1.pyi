BytesLike = bytes | bytearray | memoryview

TIMESLOTS: int
FRAME_BYTES: int

def demux(frames: BytesLike) -> list[bytes]: ...
def demux_into(frames: BytesLike, out: bytearray | memoryview) -> int: ...
