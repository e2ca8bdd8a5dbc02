"""``edge112 audio analyze|dtmf|convert`` through argparse: output, conversion notes, exit codes."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import pytest

from gateway.audio import cli
from gateway.audio.wav import read_wav, write_wav

from .sounds import dtmf, espeak, pack, silence, sox, sox_dtmf, sox_reads
from .test_wav import BAD_FILES, chunk, plain_fmt, riff


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main(["audio", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def digits_8k(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "digits.wav", pack(silence(200) + dtmf("5512#")), "alaw")


def test_register_wires_func_for_each_action() -> None:
    parser = argparse.ArgumentParser(prog="edge112")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run")
    cli.register(commands)
    for argv, func in [
        (["audio", "analyze", "x.wav", "--json"], cli.run_analyze),
        (["audio", "dtmf", "x.wav"], cli.run_dtmf),
        (["audio", "convert", "a.wav", "b.wav", "--to", "ulaw"], cli.run_convert),
    ]:
        args = parser.parse_args(argv)
        assert args.func is func
        assert args.command == "audio"


def test_dtmf(capsys: pytest.CaptureFixture[str], digits_8k: Path) -> None:
    assert run(capsys, "dtmf", digits_8k) == (0, "5512#\n", "")


def test_dtmf_none_prints_an_empty_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_wav(tmp_path / "quiet.wav", pack(silence(1000)))
    assert run(capsys, "dtmf", path) == (0, "\n", "")


@pytest.mark.requires_tool("sox")
def test_dtmf_of_a_44k1_stereo_sox_recording(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "stereo.wav"
    sox_dtmf(path, "5512#", 44100, 2)
    code, out, err = run(capsys, "dtmf", path)
    assert (code, out) == (0, "5512#\n")
    assert "converted from 44100 Hz, 2 channels, pcm_s16" in err


def test_analyze_table(capsys: pytest.CaptureFixture[str], digits_8k: Path) -> None:
    code, out, err = run(capsys, "analyze", digits_8k)
    assert (code, err) == (0, "")
    rows = dict(line.split(None, 1) for line in out.splitlines() if line and not line[0].isspace())
    assert rows["source"] == "8000 Hz, mono, alaw"
    assert rows["dtmf"] == "5512#"
    assert rows["first_speech_ms"] == "none"
    assert rows["silent"] == "yes"
    assert rows["duration_ms"] == "1200"
    assert "speech_ratio" in rows and "level_dbov" in rows


@pytest.mark.requires_tool("espeak-ng")
def test_analyze_says_what_it_converted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    espeak(path, "Tolong, ada kebakaran")
    code, out, _ = run(capsys, "analyze", path)
    assert code == 0
    assert "22050 Hz, mono, pcm_s16, converted to 8000 Hz mono" in out
    assert "silent            no" in out


def test_analyze_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    stereo = bytes(16000)  # 500 ms of 8 kHz 16-bit stereo silence
    path.write_bytes(
        riff(
            chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 8000, 32000, 4, 16)), chunk(b"data", stereo)
        )
    )
    code, out, _ = run(capsys, "analyze", path, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["first_speech_ms"] is None
    assert report["silent"] is True
    assert report["dtmf"] == []
    assert report["duration_ms"] == 500
    assert report["source"] == {
        "file": str(path),
        "rate": 8000,
        "channels": 2,
        "encoding": "pcm_s16",
        "converted": True,
        "truncated": False,
    }


def convert(capsys: pytest.CaptureFixture[str], source: Path, out_path: Path, encoding: str) -> str:
    """``audio convert`` ``source`` to an 8 kHz mono file that still holds the digits 5512#."""
    code, out, err = run(capsys, "convert", source, out_path, "--to", encoding)
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {out_path}: 8000 Hz mono {encoding}, ")
    audio = read_wav(out_path)
    assert (audio.source.sample_rate, audio.source.channels) == (8000, 1)
    assert audio.source.encoding == {"alaw": "alaw", "ulaw": "ulaw", "pcm": "pcm_s16"}[encoding]
    assert run(capsys, "dtmf", out_path)[1] == "5512#\n"
    return out


@pytest.mark.parametrize("encoding", ["alaw", "ulaw", "pcm"])
def test_convert(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, digits_8k: Path, encoding: str
) -> None:
    convert(capsys, digits_8k, tmp_path / f"out-{encoding}.wav", encoding)


@pytest.mark.requires_tool("sox")
@pytest.mark.parametrize("encoding", ["alaw", "ulaw", "pcm"])
def test_convert_a_44k1_24_bit_stereo_file_made_by_sox(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, digits_8k: Path, encoding: str
) -> None:
    source = tmp_path / "in.wav"
    sox(digits_8k, "-r", "44100", "-c", "2", "-b", "24", source)
    out_path = tmp_path / f"out-{encoding}.wav"
    out = convert(capsys, source, out_path, encoding)
    assert "converted from 44100 Hz, 2 channels, pcm_s24" in out
    assert sox_reads(out_path), "sox opens what convert wrote"


def test_convert_to_an_unwritable_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, digits_8k: Path
) -> None:
    code, _, err = run(capsys, "convert", digits_8k, tmp_path / "no" / "dir.wav", "--to", "pcm")
    assert code == 1
    assert f"cannot write {tmp_path / 'no' / 'dir.wav'}" in err


@pytest.mark.parametrize("action", ["analyze", "dtmf", "convert"])
@pytest.mark.parametrize(
    ("name", "content", "problem"), BAD_FILES, ids=[case[0] for case in BAD_FILES]
)
def test_bad_input_exits_2_naming_file_and_problem(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    action: str,
    name: str,
    content: bytes,
    problem: str,
) -> None:
    path = tmp_path / f"{name}.wav"
    path.write_bytes(content)
    extra: list[str | Path] = [tmp_path / "out.wav", "--to", "alaw"] if action == "convert" else []
    code, out, err = run(capsys, action, path, *extra)
    assert (code, out) == (2, "")
    assert err.startswith(f"edge112 audio: {path}: ")
    assert problem in err
    assert not (tmp_path / "out.wav").exists()


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nothing.wav"
    assert run(capsys, "analyze", missing) == (
        2,
        "",
        f"edge112 audio: {missing}: No such file or directory\n",
    )


def test_truncated_file_can_be_used_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    full = riff(plain_fmt(), chunk(b"data", pack(dtmf("73"))))
    path = tmp_path / "cut.wav"
    path.write_bytes(full[:-1000])
    code, _, err = run(capsys, "dtmf", path)
    assert code == 2
    assert "truncated" in err and "--allow-truncated" in err
    code, out, err = run(capsys, "dtmf", path, "--allow-truncated")
    assert (code, out) == (0, "73\n")
    assert "warning: truncated file, using the 337 ms present" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["audio", "convert", "a.wav", "b.wav", "--to", "mp3"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
