"""``edge112 audio``: analyse, read DTMF from, and convert WAV files.

    edge112 audio analyze FILE.wav [--json]     duration, speech, first speech, silence, DTMF
    edge112 audio dtmf FILE.wav                 the digits, e.g. 5512# (an empty line when none)
    edge112 audio convert IN.wav OUT.wav --to alaw|ulaw|pcm    8 kHz mono output

Any WAV that ``gateway.audio.wav`` reads is accepted; another rate or channel
count is converted to 8 kHz mono first and the output says so (for ``dtmf``
on stderr, so stdout stays the digits). ``--allow-truncated`` uses what a
truncated file holds instead of refusing it.

Exit codes, as for the rest of ``edge112``: 0 done; 1 the output could not be
written; 2 bad input (missing, truncated, corrupt, not audio), with a message
on stderr that names the file and the problem.

Wiring: ``register(subparsers)`` adds ``audio`` to the ``edge112`` parser;
each subcommand sets ``func`` (args -> exit code). ``main(argv)`` runs the
same parser standalone (``python -m gateway.audio.cli``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gateway.audio.analyze import AudioAnalysis, analyze_pcm
from gateway.audio.wav import TARGET_RATE, WavAudio, WavError, WriteEncoding, read_wav, write_wav

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
PROGRAM = "edge112 audio"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audio`` command and its subcommands to an argparse subparsers object."""
    audio = subparsers.add_parser("audio", help="analyse, read DTMF from, or convert WAV files")
    add_arguments(audio)
    return audio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``analyze``, ``dtmf`` and ``convert`` subcommands to ``parser``."""
    actions = parser.add_subparsers(dest="audio_action", required=True, metavar="ACTION")

    analyze = actions.add_parser(
        "analyze", help="duration, speech ratio, first speech, silence, DTMF digits"
    )
    analyze.add_argument("file", help="a WAV file (any rate, channels, PCM/float/A-law/mu-law)")
    analyze.add_argument("--json", action="store_true", help="print JSON")
    _add_truncated_option(analyze)
    analyze.set_defaults(func=run_analyze)

    dtmf = actions.add_parser("dtmf", help="print the DTMF digits (an empty line when none)")
    dtmf.add_argument("file", help="a WAV file")
    _add_truncated_option(dtmf)
    dtmf.set_defaults(func=run_dtmf)

    convert = actions.add_parser("convert", help="convert a WAV to 8 kHz mono")
    convert.add_argument("input", help="the WAV file to read")
    convert.add_argument("output", help="the WAV file to write (replaced if it exists)")
    convert.add_argument("--to", required=True, choices=["alaw", "ulaw", "pcm"], dest="encoding")
    _add_truncated_option(convert)
    convert.set_defaults(func=run_convert)


def _add_truncated_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-truncated",
        action="store_true",
        help="use the audio a truncated file holds instead of refusing it",
    )


def run(args: argparse.Namespace) -> int:
    """Run the subcommand that ``args`` names."""
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "analyze": run_analyze,
        "dtmf": run_dtmf,
        "convert": run_convert,
    }
    return commands[args.audio_action](args)


# --------------------------------------------------------------------- commands


def run_analyze(args: argparse.Namespace) -> int:
    audio = _read(args.file, args.allow_truncated)
    if audio is None:
        return EXIT_BAD_INPUT
    analysis = analyze_pcm(audio.pcm)
    if args.json:
        print(json.dumps(_analysis_json(audio, analysis), indent=2))
    else:
        print(_analysis_table(audio, analysis))
    return EXIT_OK


def run_dtmf(args: argparse.Namespace) -> int:
    audio = _read(args.file, args.allow_truncated)
    if audio is None:
        return EXIT_BAD_INPUT
    if audio.converted:
        print(f"{PROGRAM}: {args.file}: {_conversion_note(audio)}", file=sys.stderr)
    print(analyze_pcm(audio.pcm).digits)
    return EXIT_OK


def run_convert(args: argparse.Namespace) -> int:
    audio = _read(args.input, args.allow_truncated)
    if audio is None:
        return EXIT_BAD_INPUT
    encoding: WriteEncoding = args.encoding
    try:
        write_wav(args.output, audio.pcm, encoding)
    except OSError as error:
        print(f"{PROGRAM}: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILURE
    origin = _conversion_note(audio) if audio.converted else f"from {audio.source.describe()}"
    print(
        f"wrote {args.output}: {TARGET_RATE} Hz mono {encoding}, "
        f"{audio.frames * 1000 // TARGET_RATE} ms ({origin})"
    )
    return EXIT_OK


# --------------------------------------------------------------------- helpers


def _read(path: str, allow_truncated: bool) -> WavAudio | None:
    """The file as 8 kHz mono, or None after saying on stderr what is wrong with it."""
    try:
        audio = read_wav(path, allow_truncated=allow_truncated)
    except WavError as error:
        hint = (
            " (--allow-truncated uses what is there)"
            if error.problem.startswith("truncated: the data chunk")
            else ""
        )
        print(f"{PROGRAM}: {error}{hint}", file=sys.stderr)
        return None
    except OSError as error:
        print(f"{PROGRAM}: {path}: {error.strerror or error}", file=sys.stderr)
        return None
    if audio.truncated:
        print(
            f"{PROGRAM}: {path}: warning: truncated file, using the {audio.duration_ms} ms present",
            file=sys.stderr,
        )
    return audio


def _conversion_note(audio: WavAudio) -> str:
    return f"converted from {audio.source.describe()}"


def _source_json(audio: WavAudio) -> dict[str, Any]:
    return {
        "file": str(audio.path),
        "rate": audio.source.sample_rate,
        "channels": audio.source.channels,
        "encoding": audio.source.encoding,
        "converted": audio.converted,
        "truncated": audio.truncated,
    }


def _analysis_json(audio: WavAudio, analysis: AudioAnalysis) -> dict[str, Any]:
    return {**analysis.as_dict(), "source": _source_json(audio)}


def _analysis_table(audio: WavAudio, analysis: AudioAnalysis) -> str:
    values = analysis.as_dict()
    source = audio.source.describe()
    if audio.converted:
        source += f", converted to {TARGET_RATE} Hz mono"
    rows: list[tuple[str, object]] = [
        ("file", audio.path),
        ("source", source),
        ("duration_ms", values["duration_ms"]),
        ("speech_ratio", values["speech_ratio"]),
        (
            "first_speech_ms",
            "none" if analysis.first_speech_ms is None else values["first_speech_ms"],
        ),
        ("silent", "yes" if analysis.silent else "no"),
        ("dtmf", analysis.digits or "none"),
        ("level_dbov", values["level_dbov"]),
        ("noise_floor_dbov", values["noise_floor_dbov"]),
        ("clipped_samples", values["clipped_samples"]),
    ]
    lines = [f"{name:<18}{value}" for name, value in rows]
    lines += [f"{'':<18}{item.digit}  {item.start_ms}-{item.end_ms} ms" for item in analysis.dtmf]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """A standalone ``edge112``-like parser holding only the ``audio`` command."""
    parser = argparse.ArgumentParser(prog="edge112")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
