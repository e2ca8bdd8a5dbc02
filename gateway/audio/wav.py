"""RIFF/WAVE files: read any common WAV as 8 kHz mono 16-bit PCM; write complete files.

Python's ``wave`` module reads PCM only, and call audio is usually A-law or
mu-law (format tags 6 and 7), hence this parser. The file layout (all
integers little-endian; every chunk body is followed by a pad byte when its
size is odd)::

    offset  size  field
         0     4  "RIFF"
         4     4  riff_size: bytes that follow (file length - 8)
         8     4  "WAVE"
        12     .  chunks, in any order:  id (4 ASCII)  size (u32)  body  [pad]

    "fmt " body, 16 / 18 / 40 bytes:
         0  u16  format_tag       1 PCM, 3 IEEE float, 6 A-law, 7 mu-law, 0xFFFE extensible
         2  u16  channels         interleaved in each sample frame
         4  u32  sample_rate      frames per second
         8  u32  byte_rate        sample_rate * block_align
        12  u16  block_align      bytes per frame = channels * bytes per sample
        14  u16  bits_per_sample
        16  u16  cb_size          bytes that follow: 0 (A-law, mu-law, float), 22 (extensible)
        18  u16  valid_bits       extensible only: bits used in each container
        20  u32  channel_mask     extensible only: speaker positions (ignored here)
        24  16   subformat GUID   extensible only: real format tag (u16), then the fixed
                                  tail 00 00 00 00 10 00 80 00 00 AA 00 38 9B 71
    "fact" body: u32 frames (written for non-PCM formats; not needed to read)
    "data" body: the sample frames
    anything else ("LIST", "bext", "cue ", "JUNK", ...): skipped

Reading (``read_wav``): PCM unsigned 8-bit, signed 16/24/32-bit (any valid
bit count in those containers), IEEE float 32/64, A-law, mu-law, each plain
or as WAVE_FORMAT_EXTENSIBLE; any channel count (mixed down by averaging)
and any rate from 4,000 to 192,000 Hz (resampled, see
``cython_ext/resample.pyx``). Wider samples are truncated to their top 16
bits; floats are scaled by 32,768, rounded and clipped. Data is decoded in
blocks, so a long 192 kHz file never sits in memory whole.

Robustness: chunks may come in any order and after ``data``; a missing pad
byte after an odd-sized chunk is tolerated; bytes after the RIFF extent, or
an unreadable chunk header once ``fmt `` and ``data`` are found, are ignored
(a recording copied while being written has audio beyond its declared data);
a data size of 0xFFFFFFFF (streaming writers) means "to the end of the file".

Truncated files (a data chunk shorter than declared) are **refused** with
``WavError`` unless the caller passes ``allow_truncated=True``: then the whole
frames present are returned and ``WavAudio.truncated`` is set. A 112 recording
that lost its end is still evidence, but nobody should take it for complete
without asking. Every other problem raises ``WavError`` naming the file and
the problem; I/O errors (missing file, permissions) stay ``OSError``.

Writing (``write_wav``): 16-bit PCM, A-law or mu-law at 8 kHz mono by default,
with A-law/mu-law laid out as sox writes them (18-byte ``fmt `` with
cb_size 0, then a ``fact`` chunk). The file is written beside its final name,
fsynced, then renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from cython_ext import g711, resample

BytesLike = bytes | bytearray | memoryview
WriteEncoding = Literal["pcm", "alaw", "ulaw"]

TARGET_RATE = 8000
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
STREAMING_SIZE = 0xFFFFFFFF  # "size unknown": written by tools that cannot seek back
GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
READ_BLOCK_BYTES = 1 << 20
MINIMUM_WAV_BYTES = 12 + 8 + 16 + 8  # RIFF header, a 16-byte fmt chunk, an empty data chunk

_KNOWN_TAGS = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG",
    0x0055: "MPEG layer 3",
    0x0064: "G.726 ADPCM",
    0x0092: "Dolby AC3",
    0x1610: "AAC",
}
_OTHER_FILES = {
    b"ID3": "an MP3 file",
    b"\xff\xfb": "an MP3 file",
    b"OggS": "an Ogg file",
    b"fLaC": "a FLAC file",
    b"#!AMR": "an AMR file",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
}


class WavError(ValueError):
    """A file that is not a WAV this module can read; ``str()`` names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


@dataclass(frozen=True)
class WavFormat:
    """What the ``fmt `` chunk says, resolved (extensible subformat applied)."""

    encoding: str  # pcm_u8, pcm_s16, pcm_s24, pcm_s32, float32, float64, alaw, ulaw
    format_tag: int  # the tag in the file (0xFFFE for extensible)
    channels: int
    sample_rate: int
    bits_per_sample: int  # valid bits
    block_align: int  # bytes per frame

    @property
    def sample_width(self) -> int:
        return self.block_align // self.channels

    def describe(self) -> str:
        channels = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{self.sample_rate} Hz, {channels}, {self.encoding}"


@dataclass(frozen=True)
class WavAudio:
    """Decoded audio: ``pcm`` is signed 16-bit little-endian at ``rate``, ``channels`` interleaved.

    With ``convert=True`` (the default) ``rate`` is 8,000 and ``channels`` 1;
    ``source`` tells what the file held. ``duration_ms`` is the file's (whole
    frames present / source rate).
    """

    path: Path
    pcm: bytes
    rate: int
    channels: int
    source: WavFormat
    duration_ms: int
    truncated: bool

    @property
    def converted(self) -> bool:
        """Whether the rate or the channel count was changed (not just the encoding)."""
        return self.rate != self.source.sample_rate or self.channels != self.source.channels

    @property
    def frames(self) -> int:
        return len(self.pcm) // (2 * self.channels)


@dataclass(frozen=True)
class _Layout:
    """Where the audio is: the format, and the data chunk's usable extent."""

    format: WavFormat
    data_offset: int
    data_bytes: int  # whole frames present
    truncated: bool


# --------------------------------------------------------------------- reading


def read_wav(
    path: str | os.PathLike[str], *, convert: bool = True, allow_truncated: bool = False
) -> WavAudio:
    """Read ``path`` as signed 16-bit PCM: 8 kHz mono when ``convert``, else as stored.

    Raises ``WavError`` for anything but a readable WAV (see the module
    docstring for the truncated-file policy) and ``OSError`` for I/O errors.
    """
    with open(path, "rb") as file:
        layout = _read_layout(file, path, allow_truncated=allow_truncated)
        fmt = layout.format
        if convert and fmt.sample_rate != TARGET_RATE:
            _check_convertible_rate(path, fmt.sample_rate)
        blocks = _data_blocks(file, layout)
        decode = _decoder(fmt)
        if convert:
            pcm = _convert(blocks, decode, fmt)
            rate, channels = TARGET_RATE, 1
        else:
            pcm = b"".join(decode(block) for block in blocks)
            rate, channels = fmt.sample_rate, fmt.channels
    frames = layout.data_bytes // fmt.block_align
    return WavAudio(
        path=Path(path),
        pcm=pcm,
        rate=rate,
        channels=channels,
        source=fmt,
        duration_ms=frames * 1000 // fmt.sample_rate,
        truncated=layout.truncated,
    )


def read_format(path: str | os.PathLike[str]) -> WavFormat:
    """Only the format of ``path`` (no audio decoded); truncated files are accepted."""
    with open(path, "rb") as file:
        return _read_layout(file, path, allow_truncated=True).format


def _check_convertible_rate(path: str | os.PathLike[str], rate: int) -> None:
    if not resample.MIN_RATE <= rate <= resample.MAX_RATE:
        raise WavError(
            path,
            f"sample rate {rate} Hz cannot be converted to {TARGET_RATE} Hz "
            f"(supported: {resample.MIN_RATE}..{resample.MAX_RATE} Hz)",
        )


def _convert(blocks: Iterator[bytes], decode: Callable[[bytes], bytes], fmt: WavFormat) -> bytes:
    resampler = (
        resample.Resampler(fmt.sample_rate, TARGET_RATE) if fmt.sample_rate != TARGET_RATE else None
    )
    out: list[bytes] = []
    for block in blocks:
        mono = resample.mix_to_mono(decode(block), fmt.channels)
        out.append(resampler.feed(mono) if resampler is not None else mono)
    if resampler is not None:
        out.append(resampler.flush())
    return b"".join(out)


def _data_blocks(file: BinaryIO, layout: _Layout) -> Iterator[bytes]:
    """The data chunk in blocks of whole frames."""
    block = max(1, READ_BLOCK_BYTES // layout.format.block_align) * layout.format.block_align
    file.seek(layout.data_offset)
    remaining = layout.data_bytes
    while remaining > 0:
        chunk = file.read(min(block, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _read_layout(file: BinaryIO, path: str | os.PathLike[str], *, allow_truncated: bool) -> _Layout:
    file_size = os.fstat(file.fileno()).st_size
    riff_end = _check_riff_header(file.read(12), path, file_size)
    fmt_body: bytes | None = None
    data: tuple[int, int] | None = None  # offset, declared size
    for chunk_id, offset, size in _chunks(file, path, file_size, riff_end):
        if chunk_id == b"fmt " and fmt_body is None:
            if offset + size > file_size:
                raise WavError(path, "truncated header: the fmt chunk ends past the end of file")
            file.seek(offset)
            fmt_body = file.read(size)
        elif chunk_id == b"data" and data is None:
            data = (offset, size)
        if fmt_body is not None and data is not None:
            break
    if fmt_body is None and data is None and file_size < MINIMUM_WAV_BYTES:
        raise WavError(path, f"truncated header: {file_size} bytes, no fmt or data chunk")
    if fmt_body is None:
        raise WavError(path, "no fmt chunk: the file does not say how its audio is encoded")
    if data is None:
        raise WavError(path, "no data chunk: the file holds no audio")
    fmt = _parse_format(fmt_body, path)
    return _data_layout(fmt, data, file_size, path, allow_truncated=allow_truncated)


def _check_riff_header(head: bytes, path: str | os.PathLike[str], file_size: int) -> int:
    """Validate the 12-byte RIFF header; return where the RIFF extent ends."""
    if file_size == 0:
        raise WavError(path, "empty file (0 bytes)")
    for magic, what in _OTHER_FILES.items():
        if head.startswith(magic):
            raise WavError(path, f"not a WAV file: this is {what}")
    if head[:4] == b"RIFX":
        raise WavError(path, "big-endian RIFX WAV files are not supported")
    if head[:4] == b"RF64":
        raise WavError(path, "RF64 (WAV over 4 GiB) files are not supported")
    if len(head) < 12:
        if b"RIFF".startswith(head[:4]):
            raise WavError(
                path, f"truncated header: {len(head)} bytes, a WAV header needs at least 12"
            )
        raise WavError(path, f"not a WAV file (starts with {head[:4]!r})")
    if head[:4] != b"RIFF":
        raise WavError(path, f"not a RIFF/WAVE file (starts with {head[:4]!r})")
    if head[8:12] != b"WAVE":
        form = head[8:12].decode("latin-1")
        raise WavError(path, f"a RIFF file of type {form!r}, not WAVE audio")
    (riff_size,) = struct.unpack_from("<I", head, 4)
    riff_end = 8 + riff_size
    if riff_size == STREAMING_SIZE or riff_end > file_size or riff_end < 12:
        return file_size
    return riff_end


def _valid_id(chunk_id: bytes) -> bool:
    return len(chunk_id) == 4 and all(0x20 <= byte <= 0x7E for byte in chunk_id)


def _chunks(
    file: BinaryIO, path: str | os.PathLike[str], file_size: int, riff_end: int
) -> Iterator[tuple[bytes, int, int]]:
    """(id, body offset, declared size) of each chunk, walking within the RIFF extent.

    Past the RIFF extent the walk goes on to the end of the file only until
    ``fmt `` and ``data`` are found (some writers get riff_size wrong).
    """
    position = 12
    seen: set[bytes] = set()
    while position + 8 <= file_size:
        if position + 8 > riff_end and {b"fmt ", b"data"} <= seen:
            return
        file.seek(position)
        header = file.read(8)
        chunk_id, size = header[:4], struct.unpack_from("<I", header, 4)[0]
        if not _valid_id(chunk_id):
            if {b"fmt ", b"data"} <= seen:
                return  # trailing bytes after the audio (a copy of a file being written)
            raise WavError(
                path, f"corrupt chunk header at byte {position} (id {chunk_id!r}): not a WAV file"
            )
        seen.add(chunk_id)
        yield chunk_id, position + 8, size
        end = position + 8 + size
        if (chunk_id == b"data" and size == STREAMING_SIZE) or end > file_size:
            if {b"fmt ", b"data"} <= seen:
                return  # the data chunk decides what a short file means
            raise WavError(
                path,
                f"truncated: chunk {chunk_id.decode('latin-1')!r} at byte {position} declares "
                f"{size} bytes but the file ends at byte {file_size}",
            )
        position = _next_chunk(file, end, size, file_size)
    if position < file_size and not {b"fmt ", b"data"} <= seen:
        raise WavError(path, f"truncated header: {file_size - position} stray bytes at the end")


def _next_chunk(file: BinaryIO, end: int, size: int, file_size: int) -> int:
    """Where the next chunk starts: after an odd chunk's pad byte, unless the writer left it out."""
    if size % 2 == 0 or end + 9 > file_size:
        return end + (size % 2)
    file.seek(end)
    unpadded = file.read(4)
    file.seek(end + 1)
    padded = file.read(4)
    if _valid_id(unpadded) and not _valid_id(padded):
        return end
    return end + 1


def _parse_format(body: bytes, path: str | os.PathLike[str]) -> WavFormat:
    if len(body) < 16:
        raise WavError(path, f"truncated header: fmt chunk is {len(body)} bytes, needs 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    container_bits = bits
    if tag == WAVE_FORMAT_EXTENSIBLE:
        tag, bits = _parse_extensible(body, bits, path)
    if channels == 0:
        raise WavError(path, "fmt chunk declares 0 channels")
    if rate == 0:
        raise WavError(path, "fmt chunk declares a sample rate of 0 Hz")
    if bits == 0:
        raise WavError(path, "fmt chunk declares 0 bits per sample")
    encoding = _encoding(tag, container_bits, path)
    width = (container_bits + 7) // 8
    if block_align != channels * width:
        raise WavError(
            path,
            f"fmt chunk is inconsistent: block_align {block_align} for {channels} channel(s) "
            f"of {container_bits}-bit samples (expected {channels * width})",
        )
    return WavFormat(
        encoding=encoding,
        format_tag=struct.unpack_from("<H", body)[0],
        channels=channels,
        sample_rate=rate,
        bits_per_sample=bits,
        block_align=block_align,
    )


def _parse_extensible(
    body: bytes, container_bits: int, path: str | os.PathLike[str]
) -> tuple[int, int]:
    """(real format tag, valid bits) of a WAVE_FORMAT_EXTENSIBLE fmt chunk."""
    if len(body) < 40:
        raise WavError(
            path, f"truncated header: extensible fmt chunk is {len(body)} bytes, needs 40"
        )
    (valid_bits,) = struct.unpack_from("<H", body, 18)
    subformat = body[24:40]
    if subformat[2:] != GUID_TAIL:
        raise WavError(path, f"unsupported extensible subformat {subformat.hex()}")
    (tag,) = struct.unpack_from("<H", subformat)
    if valid_bits == 0 or valid_bits > container_bits:
        valid_bits = container_bits
    return tag, valid_bits


def _encoding(tag: int, container_bits: int, path: str | os.PathLike[str]) -> str:
    supported: dict[tuple[int, int], str] = {
        (WAVE_FORMAT_PCM, 8): "pcm_u8",
        (WAVE_FORMAT_PCM, 16): "pcm_s16",
        (WAVE_FORMAT_PCM, 24): "pcm_s24",
        (WAVE_FORMAT_PCM, 32): "pcm_s32",
        (WAVE_FORMAT_IEEE_FLOAT, 32): "float32",
        (WAVE_FORMAT_IEEE_FLOAT, 64): "float64",
        (WAVE_FORMAT_ALAW, 8): "alaw",
        (WAVE_FORMAT_MULAW, 8): "ulaw",
    }
    # PCM with fewer valid bits sits in the next whole-byte container (12-bit in 16).
    rounded = 8 * ((container_bits + 7) // 8) if tag == WAVE_FORMAT_PCM else container_bits
    encoding = supported.get((tag, rounded))
    if encoding is not None:
        return encoding
    name = _KNOWN_TAGS.get(tag)
    if name is not None:
        raise WavError(path, f"unsupported encoding {name} (format tag 0x{tag:04X})")
    if tag in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW):
        raise WavError(
            path, f"unsupported sample size: {container_bits} bits for format tag 0x{tag:04X}"
        )
    raise WavError(path, f"unsupported encoding: format tag 0x{tag:04X}")


def _data_layout(
    fmt: WavFormat,
    data: tuple[int, int],
    file_size: int,
    path: str | os.PathLike[str],
    *,
    allow_truncated: bool,
) -> _Layout:
    offset, declared = data
    present = max(0, file_size - offset)
    truncated = False
    if declared == STREAMING_SIZE:
        usable = present
    elif declared > present:
        if not allow_truncated:
            raise WavError(
                path,
                f"truncated: the data chunk declares {declared} bytes but only {present} "
                "are present",
            )
        usable, truncated = present, True
    else:
        usable = declared
    partial = usable % fmt.block_align
    if partial and not (truncated or declared == STREAMING_SIZE):
        raise WavError(
            path,
            f"the data chunk holds {usable} bytes, not a whole number of "
            f"{fmt.block_align}-byte sample frames ({fmt.describe()})",
        )
    return _Layout(fmt, offset, usable - partial, truncated)


# --------------------------------------------------------------------- decoding


def _decoder(fmt: WavFormat) -> Callable[[bytes], bytes]:
    """A function from a block of whole frames to interleaved signed 16-bit PCM."""
    decoders: dict[str, Callable[[bytes], bytes]] = {
        "pcm_u8": _from_u8,
        "pcm_s16": lambda block: block,
        "pcm_s24": _from_s24,
        "pcm_s32": _from_s32,
        "float32": lambda block: resample.float_to_pcm16(block, 4),
        "float64": lambda block: resample.float_to_pcm16(block, 8),
        "alaw": g711.alaw_decode,
        "ulaw": g711.ulaw_decode,
    }
    return decoders[fmt.encoding]


_U8_TO_HIGH_BYTE = bytes((value ^ 0x80) for value in range(256))


def _from_u8(block: bytes) -> bytes:
    out = bytearray(2 * len(block))
    out[1::2] = block.translate(_U8_TO_HIGH_BYTE)
    return bytes(out)


def _from_s24(block: bytes) -> bytes:
    out = bytearray(2 * (len(block) // 3))
    out[0::2] = block[1::3]
    out[1::2] = block[2::3]
    return bytes(out)


def _from_s32(block: bytes) -> bytes:
    out = bytearray(len(block) // 2)
    out[0::2] = block[2::4]
    out[1::2] = block[3::4]
    return bytes(out)


# --------------------------------------------------------------------- writing


def wav_header(
    encoding: WriteEncoding, data_bytes: int, *, rate: int = TARGET_RATE, channels: int = 1
) -> bytes:
    """The header of a WAV of ``data_bytes`` bytes of audio, up to the data chunk's body.

    ``pcm`` is 16-bit (44 bytes of header); ``alaw``/``ulaw`` are 8-bit with an
    18-byte fmt (cb_size 0) and a ``fact`` chunk, as sox writes them (58 bytes).
    The RIFF size counts the pad byte that follows an odd-sized data chunk.
    ``channels`` > 1: samples interleaved (an E1 call's two directions are 2).
    """
    pad = data_bytes % 2
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    if encoding == "pcm":
        align = 2 * channels
        fmt = struct.pack("<HHIIHH", WAVE_FORMAT_PCM, channels, rate, align * rate, align, 16)
        frames = data_bytes // align
        fact = b""
    elif encoding in ("alaw", "ulaw"):
        tag = WAVE_FORMAT_ALAW if encoding == "alaw" else WAVE_FORMAT_MULAW
        fmt = struct.pack("<HHIIHHH", tag, channels, rate, channels * rate, channels, 8, 0)
        frames = data_bytes // channels
        fact = b"fact" + struct.pack("<II", 4, frames)
    else:
        raise ValueError(f"encoding must be 'pcm', 'alaw' or 'ulaw', got {encoding!r}")
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + fact + b"data"
    riff_size = 4 + len(chunks) + 4 + data_bytes + pad
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + struct.pack("<I", data_bytes)


def encode_pcm(pcm16: BytesLike, encoding: WriteEncoding) -> bytes:
    """Signed 16-bit PCM as the bytes of a ``pcm``/``alaw``/``ulaw`` data chunk."""
    if len(pcm16) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm16)}")
    if encoding == "alaw":
        return g711.alaw_encode(pcm16)
    if encoding == "ulaw":
        return g711.ulaw_encode(pcm16)
    if encoding == "pcm":
        return bytes(pcm16)
    raise ValueError(f"encoding must be 'pcm', 'alaw' or 'ulaw', got {encoding!r}")


def write_wav(
    path: str | os.PathLike[str],
    pcm16: BytesLike,
    encoding: WriteEncoding = "pcm",
    *,
    rate: int = TARGET_RATE,
) -> Path:
    """Write mono signed 16-bit PCM at ``rate`` (8 kHz) as a complete WAV; return the path.

    Written to a temporary file in the same directory, fsynced and renamed
    over ``path``: a crash leaves either the old file or the whole new one.
    """
    target = Path(path)
    data = encode_pcm(pcm16, encoding)
    body = wav_header(encoding, len(data), rate=rate) + data + b"\x00" * (len(data) % 2)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
    return target


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed entry in ``directory`` survive a power cut."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
