"""The WAV reader on every format and layout, every bad input, and the writer."""

from __future__ import annotations

import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cython_ext import g711
from cython_ext.dtmf import DtmfDetector
from gateway.audio import wav
from gateway.audio.wav import WavError, read_format, read_wav, wav_header, write_wav
from tests.conftest import require_tool

from .sounds import dtmf, pack, sox, sox_dtmf, tone, unpack

PCM = pack([*tone((697.0, 1209.0), 300), -32768, 32767, 0, 1, -1])


def chunk(chunk_id: bytes, body: bytes, *, pad: bool = True) -> bytes:
    return (
        chunk_id + struct.pack("<I", len(body)) + body + (b"\x00" if pad and len(body) % 2 else b"")
    )


def riff(*chunks: bytes, riff_size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def fmt(tag: int, channels: int, rate: int, bits: int, *, extra: bytes | None = None) -> bytes:
    align = channels * ((bits + 7) // 8)
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    return chunk(b"fmt ", body if extra is None else body + extra)


def extensible(subformat_tag: int, channels: int, rate: int, container: int, valid: int) -> bytes:
    guid = struct.pack("<H", subformat_tag) + wav.GUID_TAIL
    extra = struct.pack("<HHI", 22, valid, 0x3) + guid
    return fmt(wav.WAVE_FORMAT_EXTENSIBLE, channels, rate, container, extra=extra)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def digits(pcm: bytes) -> str:
    detector = DtmfDetector(8000)
    return "".join(digit for digit, _, _ in detector.feed(pcm) + detector.flush())


# --------------------------------------------------------------------- formats


@pytest.mark.parametrize("encoding", ["pcm", "alaw", "ulaw"])
def test_writer_round_trip(tmp_path: Path, encoding: wav.WriteEncoding) -> None:
    path = write_wav(tmp_path / "x.wav", PCM, encoding)
    audio = read_wav(path)
    expected = {
        "pcm": PCM,
        "alaw": g711.alaw_decode(g711.alaw_encode(PCM)),
        "ulaw": g711.ulaw_decode(g711.ulaw_encode(PCM)),
    }[encoding]
    assert audio.pcm == expected
    assert (audio.rate, audio.channels, audio.converted, audio.truncated) == (8000, 1, False, False)
    assert audio.source.encoding == {"pcm": "pcm_s16", "alaw": "alaw", "ulaw": "ulaw"}[encoding]
    assert audio.duration_ms == len(PCM) // 2 * 1000 // 8000
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_alaw_header_layout() -> None:
    header = wav_header("alaw", 80)
    assert len(header) == 58
    assert header[12:38] == b"fmt " + struct.pack("<IHHIIHHH", 18, 6, 1, 8000, 8000, 1, 8, 0)
    assert header[38:50] == b"fact" + struct.pack("<II", 4, 80)
    assert header[50:] == b"data" + struct.pack("<I", 80)


@pytest.mark.requires_tool("sox")
def test_alaw_header_is_byte_for_byte_what_sox_writes(tmp_path: Path) -> None:
    made_by_sox = tmp_path / "sox.wav"
    sox("-n", "-r", "8000", "-c", "1", "-e", "a-law", made_by_sox, "synth", "0.01", "sine", "1000")
    assert made_by_sox.read_bytes()[:58] == wav_header("alaw", 80)


@pytest.mark.parametrize(
    ("width", "rate", "channels"),
    [(1, 22050, 1), (2, 8000, 1), (2, 44100, 2), (3, 48000, 2), (4, 16000, 3)],
)
def test_pcm_written_by_python_wave(tmp_path: Path, width: int, rate: int, channels: int) -> None:
    values = [round(20000 * math.sin(n / 7.0)) for n in range(channels * 600)]
    if width == 1:
        frames = bytes((value >> 8) + 128 for value in values)
        expected = [((value >> 8) << 8) for value in values]
    else:
        frames = b"".join(
            (value << (8 * (width - 2))).to_bytes(width, "little", signed=True) for value in values
        )
        expected = values
    path = tmp_path / "py.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    raw = read_wav(path, convert=False)
    assert (raw.rate, raw.channels) == (rate, channels)
    assert unpack(raw.pcm) == expected
    assert raw.source.encoding == {1: "pcm_u8", 2: "pcm_s16", 3: "pcm_s24", 4: "pcm_s32"}[width]
    converted = read_wav(path)
    assert (converted.rate, converted.channels) == (8000, 1)
    assert converted.frames == math.ceil(600 * 8000 / rate)
    assert converted.converted == (rate != 8000 or channels != 1)


@pytest.mark.parametrize(("code", "width"), [("f", 4), ("d", 8)])
@pytest.mark.parametrize("as_extensible", [False, True])
def test_float(tmp_path: Path, code: str, width: int, as_extensible: bool) -> None:
    values = [0.0, 0.5, -0.5, 1.0, -1.0, 1.5, 0.25]
    data = struct.pack(f"<{len(values)}{code}", *values)
    header = (
        extensible(wav.WAVE_FORMAT_IEEE_FLOAT, 1, 8000, 8 * width, 8 * width)
        if as_extensible
        else fmt(wav.WAVE_FORMAT_IEEE_FLOAT, 1, 8000, 8 * width, extra=b"\x00\x00")
    )
    audio = read_wav(write(tmp_path, "f.wav", riff(header, chunk(b"data", data))))
    assert unpack(audio.pcm) == [0, 16384, -16384, 32767, -32768, 32767, 8192]
    assert audio.source.encoding == f"float{8 * width}"


@pytest.mark.parametrize(("tag", "decode"), [(6, g711.alaw_decode), (7, g711.ulaw_decode)])
@pytest.mark.parametrize("as_extensible", [False, True])
def test_g711(tmp_path: Path, tag: int, decode: object, as_extensible: bool) -> None:
    codes = bytes(range(256))
    header = (
        extensible(tag, 1, 8000, 8, 8) if as_extensible else fmt(tag, 1, 8000, 8, extra=b"\x00\x00")
    )
    audio = read_wav(
        write(
            tmp_path,
            "g.wav",
            riff(header, chunk(b"fact", b"\x00\x01\x00\x00"), chunk(b"data", codes)),
        )
    )
    assert audio.pcm == decode(codes)  # type: ignore[operator]


def test_extensible_24_bits_in_32(tmp_path: Path) -> None:
    values = [0x123456, -0x123456, 0x7FFFFF, -0x800000]
    data = b"".join((value << 8).to_bytes(4, "little", signed=True) for value in values)
    audio = read_wav(
        write(tmp_path, "e.wav", riff(extensible(1, 1, 8000, 32, 24), chunk(b"data", data))),
        convert=False,
    )
    assert unpack(audio.pcm) == [0x1234, -0x1235, 0x7FFF, -0x8000]
    assert audio.source.bits_per_sample == 24
    assert audio.source.encoding == "pcm_s32"


def test_twelve_bit_pcm_in_16(tmp_path: Path) -> None:
    data = pack([0x7FF0, -0x8000, 0x0010])
    audio = read_wav(write(tmp_path, "12.wav", riff(fmt(1, 1, 8000, 12), chunk(b"data", data))))
    assert audio.pcm == data
    assert audio.source.bits_per_sample == 12


SOX_FORMATS = [
    ("-b", "8", "-e", "unsigned-integer"),
    ("-b", "16", "-e", "signed-integer"),
    ("-b", "24", "-e", "signed-integer"),
    ("-b", "32", "-e", "signed-integer"),
    ("-b", "32", "-e", "floating-point"),
    ("-b", "64", "-e", "floating-point"),
    ("-e", "a-law"),
    ("-e", "u-law"),
]


@pytest.mark.requires_tool("sox")
@pytest.mark.parametrize("sample_format", SOX_FORMATS, ids=lambda f: "-".join(f).replace("-", ""))
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2)])
def test_files_written_by_sox(
    tmp_path: Path, sample_format: tuple[str, ...], rate: int, channels: int
) -> None:
    """Each sample format as sox writes it (extensible for > 2 channels or > 16 bits)."""
    path = tmp_path / "sox.wav"
    sox(
        "-n",
        "-r",
        str(rate),
        "-c",
        str(channels),
        *sample_format,
        path,
        "synth",
        "0.5",
        "sine",
        "697",
        "sine",
        "1209",
        "vol",
        "0.5",
    )
    raw16 = subprocess.run(
        [
            require_tool("sox"),
            "-D",
            str(path),
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    as_stored = read_wav(path, convert=False)
    assert (as_stored.rate, as_stored.channels) == (rate, channels)
    assert max(abs(a - b) for a, b in zip(unpack(as_stored.pcm), unpack(raw16), strict=True)) <= 1
    audio = read_wav(path)
    assert (audio.rate, audio.channels, audio.frames, audio.duration_ms) == (8000, 1, 4000, 500)
    assert digits(audio.pcm) == "1"


@pytest.mark.requires_tool("sox")
def test_44k1_stereo_dtmf_recording_by_sox(tmp_path: Path) -> None:
    """In stereo sox puts one tone per channel: only the mixdown holds the digits."""
    path = tmp_path / "stereo.wav"
    sox_dtmf(path, "5512#", 44100, 2)
    audio = read_wav(path)
    assert (audio.source.sample_rate, audio.source.channels, audio.converted) == (44100, 2, True)
    assert digits(audio.pcm) == "5512#"


def test_large_file_is_read_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signal = pack(dtmf("159", rate=44100)) * 2
    stereo = b"".join(signal[i : i + 2] * 2 for i in range(0, len(signal), 2))
    path = write(tmp_path, "big.wav", riff(fmt(1, 2, 44100, 16), chunk(b"data", stereo)))
    whole = read_wav(path)
    monkeypatch.setattr(wav, "READ_BLOCK_BYTES", 1000)
    assert read_wav(path) == whole
    assert digits(whole.pcm) == "159159"


# --------------------------------------------------------------------- layouts


def plain_fmt() -> bytes:
    return fmt(1, 1, 8000, 16)


def test_chunks_in_any_order_with_list_and_odd_chunks(tmp_path: Path) -> None:
    info = chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00edge\x00\x00")
    odd = chunk(b"junk", b"abc")  # padded to 4
    after = chunk(b"cue ", b"\x00" * 4)
    path = write(tmp_path, "o.wav", riff(info, odd, chunk(b"data", PCM), after, plain_fmt()))
    assert read_wav(path).pcm == PCM


def test_odd_chunk_without_its_pad_byte(tmp_path: Path) -> None:
    path = write(
        tmp_path, "p.wav", riff(chunk(b"junk", b"abc", pad=False), plain_fmt(), chunk(b"data", PCM))
    )
    assert read_wav(path).pcm == PCM


def test_odd_sized_alaw_data_with_pad_byte(tmp_path: Path) -> None:
    codes = bytes([0xD5, 0x55, 0x2A])
    header = fmt(6, 1, 8000, 8, extra=b"\x00\x00")
    path = write(tmp_path, "a.wav", riff(header, chunk(b"data", codes), chunk(b"LIST", b"INFO")))
    assert read_wav(path).pcm == g711.alaw_decode(codes)


def test_audio_beyond_the_declared_data_is_ignored(tmp_path: Path) -> None:
    """A copy of a recording being written: the header counts only what was synced."""
    content = riff(plain_fmt(), chunk(b"data", PCM[:1000]))
    path = write(tmp_path, "copy.wav", content + PCM[1000:])
    audio = read_wav(path)
    assert audio.pcm == PCM[:1000]
    assert not audio.truncated


@pytest.mark.parametrize("riff_size", [0, 0xFFFFFFFF, 10, 1 << 30])
def test_wrong_riff_size_is_tolerated(tmp_path: Path, riff_size: int) -> None:
    path = write(tmp_path, "r.wav", riff(plain_fmt(), chunk(b"data", PCM), riff_size=riff_size))
    assert read_wav(path).pcm == PCM


def test_streaming_data_size_means_to_the_end(tmp_path: Path) -> None:
    content = riff(plain_fmt(), b"data" + struct.pack("<I", 0xFFFFFFFF), riff_size=0xFFFFFFFF)
    path = write(tmp_path, "s.wav", content + PCM + b"\x01")  # a torn last sample is dropped
    audio = read_wav(path)
    assert audio.pcm == PCM
    assert not audio.truncated


def test_truncated_data_is_refused_unless_allowed(tmp_path: Path) -> None:
    full = riff(plain_fmt(), chunk(b"data", PCM))
    path = write(tmp_path, "t.wav", full[: len(full) - 1001])
    with pytest.raises(
        WavError, match=r"truncated: the data chunk declares \d+ bytes but only \d+"
    ):
        read_wav(path)
    audio = read_wav(path, allow_truncated=True)
    assert audio.truncated
    assert audio.pcm == PCM[: len(PCM) - 1002]  # the torn sample is dropped too
    assert read_format(path).encoding == "pcm_s16"


def test_format_only(tmp_path: Path) -> None:
    path = write(tmp_path, "f.wav", riff(fmt(1, 2, 44100, 24), chunk(b"data", b"\x00" * 60)))
    assert read_format(path).describe() == "44100 Hz, 2 channels, pcm_s24"


# --------------------------------------------------------------------- bad input

BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty file"),
    ("text", b"This is not audio at all, just text.\n", "not a RIFF/WAVE file"),
    ("mp3", b"ID3\x04\x00" + b"\x00" * 100, "this is an MP3 file"),
    ("avi", b"RIFF\x04\x00\x00\x00AVI ", "type 'AVI ', not WAVE"),
    ("rifx", b"RIFX\x04\x00\x00\x00WAVE", "big-endian RIFX"),
    ("short-header", b"RIFF\x24\x00", "truncated header"),
    ("fmt-cut", riff(plain_fmt())[:30], "truncated header"),
    (
        "fmt-too-small",
        riff(chunk(b"fmt ", b"\x01\x00\x01\x00"), chunk(b"data", PCM)),
        "fmt chunk is 4 bytes",
    ),
    ("no-fmt", riff(chunk(b"data", PCM)), "no fmt chunk"),
    ("no-data", riff(plain_fmt(), chunk(b"LIST", b"INFO")), "no data chunk"),
    ("header-only", riff(), "truncated header: 12 bytes"),
    (
        "truncated-data",
        riff(plain_fmt(), chunk(b"data", PCM))[:-100],
        "truncated: the data chunk declares",
    ),
    (
        "odd-bytes",
        riff(plain_fmt(), chunk(b"data", PCM + b"\x01")),
        "not a whole number of 2-byte sample frames",
    ),
    ("adpcm", riff(fmt(2, 1, 8000, 4), chunk(b"data", PCM)), "Microsoft ADPCM (format tag 0x0002)"),
    ("unknown-tag", riff(fmt(0x1234, 1, 8000, 16), chunk(b"data", PCM)), "format tag 0x1234"),
    ("pcm-48-bit", riff(fmt(1, 1, 8000, 48), chunk(b"data", PCM[:48])), "48 bits"),
    (
        "zero-channels",
        riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 0, 8000, 0, 0, 16)), chunk(b"data", PCM)),
        "0 channels",
    ),
    ("zero-rate", riff(fmt(1, 1, 0, 16), chunk(b"data", PCM)), "sample rate of 0 Hz"),
    (
        "bad-align",
        riff(chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 8000, 0, 2, 16)), chunk(b"data", PCM)),
        "block_align 2",
    ),
    (
        "bad-subformat",
        riff(
            chunk(
                b"fmt ",
                struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + b"\x01" * 16,
            ),
            chunk(b"data", PCM),
        ),
        "subformat",
    ),
    (
        "garbage-chunk",
        riff(b"\x00\x01\x02\x03\x04\x00\x00\x00", plain_fmt(), chunk(b"data", PCM)),
        "corrupt chunk header at byte 12",
    ),
    (
        "list-past-end",
        riff(b"LIST" + struct.pack("<I", 10_000), plain_fmt()),
        "chunk 'LIST' at byte 12 declares 10000",
    ),
    ("rate-too-low", riff(fmt(1, 1, 2000, 16), chunk(b"data", PCM)), "2000 Hz cannot be converted"),
]


@pytest.mark.parametrize(
    ("name", "content", "problem"), BAD_FILES, ids=[case[0] for case in BAD_FILES]
)
def test_bad_files_raise_wav_error(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    path = write(tmp_path, f"{name}.wav", content)
    with pytest.raises(WavError) as caught:
        read_wav(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    assert caught.value.path == path
    assert isinstance(caught.value, ValueError)


def test_rate_outside_the_converter_is_fine_unconverted(tmp_path: Path) -> None:
    path = write(tmp_path, "slow.wav", riff(fmt(1, 1, 2000, 16), chunk(b"data", PCM)))
    assert read_wav(path, convert=False).pcm == PCM


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nothing.wav")


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even number"):
        write_wav(tmp_path / "x.wav", b"\x00\x01\x02")
    with pytest.raises(ValueError, match="encoding"):
        write_wav(tmp_path / "x.wav", b"", "mp3")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


VALID_FILES = [
    riff(plain_fmt(), chunk(b"data", PCM[:400])),
    riff(chunk(b"LIST", b"INFOabc"), extensible(1, 2, 44100, 24, 24), chunk(b"data", bytes(600))),
    riff(
        fmt(6, 1, 8000, 8, extra=b"\x00\x00"), chunk(b"fact", bytes(4)), chunk(b"data", bytes(301))
    ),
    riff(fmt(3, 1, 16000, 32, extra=b"\x00\x00"), chunk(b"data", struct.pack("<50f", *[0.1] * 50))),
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    original=st.sampled_from(VALID_FILES),
    edits=st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 700),
    allow_truncated=st.booleans(),
)
def test_corrupted_files_give_wav_error_or_audio(
    tmp_path: Path,
    original: bytes,
    edits: list[tuple[int, int]],
    cut: int | None,
    allow_truncated: bool,
) -> None:
    """Flipped bytes and cut files: a WavError or audio, never another exception."""
    content = bytearray(original)
    for position, value in edits:
        if position < len(content):
            content[position] = value
    path = write(tmp_path, "fuzz.wav", bytes(content[:cut]))
    try:
        audio = read_wav(path, allow_truncated=allow_truncated)
    except WavError as error:
        assert str(error).startswith(f"{path}: ")
    else:
        assert len(audio.pcm) % 2 == 0
        assert audio.rate == 8000 and audio.channels == 1
