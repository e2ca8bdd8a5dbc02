"""``edge112 e1``: decode, convert and watch the D-channel of an E1 PRI span.

    edge112 e1 decode CAPTURE... [--json] [--calls] [--events]
    edge112 e1 decode --format hdlc|e1 --from-network FILE --from-user FILE
                      [--timeslot 16] [--start RFC3339] [--bit-order msb-first|lsb-first] ...
    edge112 e1 pcap (CAPTURE... | --format hdlc|e1|lapd --from-network URL --from-user URL)
                    -o OUT.pcapng [--linktype 203|177]
    edge112 e1 monitor (CAPTURE... | --format hdlc|e1|lapd --from-network URL --from-user URL)
                       [--speed X] [--json]

Inputs: pcap and pcapng captures of LINKTYPE_LAPD (203) or LINKTYPE_LINUX_LAPD
(177), several merged in time order (a classic pcap's direction comes from
the C/R bit of I frames), or the two raw receive streams of a tap: one
timeslot's octets (``hdlc``, 8000 a second) or whole E1 frames (``e1``, 32
octets each, 8000 a second; TS16 by default). Octet or frame ``n`` is at
``--start`` + n/8000 s (default 1970-01-01T00:00:00Z: seconds from the start).

Outputs: ``decode`` prints a line per frame like tshark's summary, or with
``--json`` a JSON object per frame whose keys are Wireshark's display-filter
fields (``lapd.sapi``, ``q931.call_ref``, ``q931.cause_value``...) plus ``t``
(epoch seconds, microseconds) and ``dir`` (``n2u``/``u2n``); a frame the
deframer refused is ``{"error": "bad_fcs", ...}``. ``--calls`` prints a call
per line instead (``--json``: the PriCall fields), ``--events`` the gateway
events the calls would send. ``pcap`` writes pcapng with each packet's
direction (Wireshark shows network -> user as inbound). ``monitor`` prints
calls and link state as they change, and a summary at the end (or Ctrl-C).
For ``pcap`` and ``monitor`` a stream that is not a regular file is a span
source URL (``tcp://``, ``unix://``, ``file://``, FIFOs, serial ports:
``drivers/e1/sources.py``), read live until it ends or Ctrl-C; ``--format
lapd`` reads deframed frames (each a 2-octet length and the frame).

Exit codes, as for the rest of ``edge112``: 0 done; 1 the output could not be
written; 2 bad usage or bad input (a file missing or not a capture, a
capture cut short: what came before is printed), with the reason on stderr.

Wiring: ``register(subparsers)`` adds ``e1`` to the ``edge112`` parser; the
decoders are imported when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from drivers.e1.decode import StreamDeframer, TapDecoder, TapFrame

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
PROGRAM = "edge112 e1"
NANOSECONDS = 1_000_000_000
OCTETS_PER_SECOND = {"hdlc": 8000, "e1": 256_000, "lapd": 0}


class InputError(Exception):
    """Bad usage or input: the message names the file or option and the problem."""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``e1`` command and its subcommands to an argparse subparsers object."""
    e1 = subparsers.add_parser(
        "e1", help="E1 PRI D-channel tools: decode captures and raw streams, pcapng, monitor"
    )
    add_arguments(e1)
    return e1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="e1_action", required=True, metavar="ACTION")

    decode = actions.add_parser(
        "decode", help="decode LAPD/Q.931 frames or calls from captures or raw streams"
    )
    _add_inputs(decode, formats=("hdlc", "e1"))
    decode.add_argument("--json", action="store_true", help="JSON Lines output")
    shown = decode.add_mutually_exclusive_group()
    shown.add_argument("--calls", action="store_true", help="one line (object) per call")
    shown.add_argument(
        "--events", action="store_true", help="the gateway call events, as JSON Lines"
    )
    decode.add_argument("--line", default="span", help="the span name in events (default span)")
    decode.add_argument(
        "--gateway-id", default="e1-decode", help="gateway_id in --events (default e1-decode)"
    )
    decode.add_argument("--region", default="00", help="region in --events (default 00)")
    decode.set_defaults(func=run_decode)

    pcap = actions.add_parser("pcap", help="write a raw source or captures as pcapng")
    _add_inputs(pcap, formats=("hdlc", "e1", "lapd"))
    pcap.add_argument(
        "-o", "--output", required=True, help="the pcapng file to write ('-': stdout)"
    )
    pcap.add_argument(
        "--linktype",
        type=int,
        choices=(203, 177),
        default=203,
        help="203 LINKTYPE_LAPD (default) or 177 LINKTYPE_LINUX_LAPD",
    )
    pcap.set_defaults(func=run_pcap)

    monitor = actions.add_parser("monitor", help="calls and line state as they change")
    _add_inputs(monitor, formats=("hdlc", "e1", "lapd"))
    monitor.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="replay files at this multiple of real time (default 0: as fast as they read)",
    )
    monitor.add_argument("--json", action="store_true", help="JSON Lines output")
    monitor.add_argument("--line", default="span", help="the span name (default span)")
    monitor.set_defaults(func=run_monitor)


def _add_inputs(parser: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    parser.add_argument("inputs", nargs="*", metavar="CAPTURE", help="pcap or pcapng files")
    raw = parser.add_argument_group("raw streams (instead of captures)")
    raw.add_argument(
        "--format",
        choices=formats,
        help="hdlc: one timeslot's octets; e1: 32-octet E1 frames"
        + ("; lapd: length-prefixed frames" if "lapd" in formats else ""),
    )
    raw.add_argument("--from-network", metavar="STREAM", help="the network -> user stream")
    raw.add_argument("--from-user", metavar="STREAM", help="the user -> network stream")
    raw.add_argument(
        "--timeslot", type=int, default=16, help="e1: the D-channel timeslot (default 16)"
    )
    raw.add_argument(
        "--start",
        metavar="RFC3339",
        help="time of the first octet (default 1970-01-01T00:00:00Z: seconds from the start)",
    )
    raw.add_argument(
        "--bit-order",
        choices=("msb-first", "lsb-first"),
        default="msb-first",
        help="msb-first (default): the first line bit is each octet's most significant",
    )


def run(args: argparse.Namespace) -> int:
    return int(args.func(args))


# -- inputs ------------------------------------------------------------------------------------


def parse_start(text: str | None) -> int:
    """``--start`` as nanoseconds since the epoch."""
    if text is None:
        return 0
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--start {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NANOSECONDS + delta.microseconds * 1000


def _check_inputs(args: argparse.Namespace) -> None:
    raw = args.format is not None
    streams = args.from_network or args.from_user
    if raw and args.inputs:
        raise InputError("give captures or --format with streams, not both")
    if raw and not streams:
        raise InputError(f"--format {args.format} needs --from-network and/or --from-user")
    if not raw and streams:
        raise InputError("--from-network/--from-user need --format hdlc or e1")
    if not raw and not args.inputs:
        raise InputError("nothing to read: give capture files or --format with streams")
    if not 1 <= args.timeslot <= 31:
        raise InputError(f"--timeslot {args.timeslot}: an E1 timeslot is 1-31")


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")  # closed by the ExitStack that owns it
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None


class Frames:
    """The frames of every input, merged in time order, and what went wrong reading them."""

    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        from drivers.e1.decode import StreamDeframer, capture_frames, raw_stream_frames
        from drivers.e1.lapd import Direction
        from drivers.e1.pcap import CaptureReader

        _check_inputs(args)
        self.readers: list[CaptureReader] = []
        self.deframers: list[StreamDeframer] = []
        self.problems: list[str] = []
        sources: list[Iterator[TapFrame]] = []
        if args.format is None:
            for path in args.inputs:
                reader = CaptureReader(stack.enter_context(_open(path)), path)
                self.readers.append(reader)
                sources.append(self._guarded(capture_frames(reader), path))
        else:
            start = parse_start(args.start)
            for direction, path in (
                (Direction.NETWORK_TO_USER, args.from_network),
                (Direction.USER_TO_NETWORK, args.from_user),
            ):
                if path is None:
                    continue
                deframer = StreamDeframer(
                    direction,
                    args.format,
                    start_ns=start,
                    bit_order=args.bit_order,
                    timeslot=args.timeslot,
                )
                self.deframers.append(deframer)
                stream = stack.enter_context(_open(path))
                sources.append(self._guarded(raw_stream_frames(stream, deframer), path))
        self._merged = heapq.merge(*sources, key=lambda frame: frame.time_ns)

    def _guarded(self, frames: Iterator[TapFrame], name: str) -> Iterator[TapFrame]:
        from drivers.e1.pcap import PcapError

        try:
            yield from frames
        except (PcapError, OSError) as error:
            self.problems.append(f"{name}: {error}")

    def __iter__(self) -> Iterator[TapFrame]:
        return iter(self._merged)

    def report(self) -> int:
        """Say on stderr what was skipped or went wrong; the exit code it calls for."""
        for reader in self.readers:
            for what, count in reader.skipped.items():
                print(f"{PROGRAM}: {reader.name}: skipped {count} x {what}", file=sys.stderr)
        for problem in self.problems:
            print(f"{PROGRAM}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT if self.problems else EXIT_OK


# -- decode ------------------------------------------------------------------------------------


def run_decode(args: argparse.Namespace) -> int:
    from drivers.e1.decode import TapDecoder, call_line, frame_fields, frame_line
    from gateway.events import envelope

    with contextlib.ExitStack() as stack:
        try:
            frames = Frames(args, stack)
        except InputError as error:
            print(f"{PROGRAM}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        tap = TapDecoder(args.line) if args.calls or args.events else None
        first_ns: int | None = None
        try:
            for number, frame in enumerate(frames, start=1):
                if tap is not None:
                    tap.feed(frame)
                    continue
                if args.json:
                    _print(json.dumps(frame_fields(number, frame), ensure_ascii=False))
                else:
                    first_ns = frame.time_ns if first_ns is None else first_ns
                    _print(frame_line(number, frame, first_ns))
            if tap is not None and args.calls:
                for call in tap.calls():
                    if args.json:
                        _print(json.dumps(call.to_json_dict(), ensure_ascii=False))
                    else:
                        _print(call_line(call))
            elif tap is not None:
                for seq, event in enumerate(tap.events, start=1):
                    body = envelope(event, seq=seq, gateway_id=args.gateway_id, region=args.region)
                    _print(json.dumps(body, ensure_ascii=False))
        except BrokenPipeError:
            return EXIT_OK  # the reader (head, less) had enough
        except OSError as error:
            print(f"{PROGRAM}: cannot write the output: {error}", file=sys.stderr)
            return EXIT_FAILURE
        if tap is not None:
            _report_tap(tap)
        return frames.report()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")


def _report_tap(tap: TapDecoder) -> None:
    bad = tap.counters.bad_frames
    errors = tap.counters.q931_errors
    if bad:
        print(f"{PROGRAM}: bad frames: {dict(bad)}", file=sys.stderr)
    if errors:
        print(f"{PROGRAM}: malformed Q.931 messages: {dict(errors)}", file=sys.stderr)


# -- pcap --------------------------------------------------------------------------------------


def run_pcap(args: argparse.Namespace) -> int:
    from drivers.e1.pcap import PcapngWriter

    with contextlib.ExitStack() as stack:
        try:
            live = args.format == "lapd" or _streams_are_urls(args)
            frames: Frames | SourceFrames = SourceFrames(args) if live else Frames(args, stack)
        except InputError as error:
            print(f"{PROGRAM}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        writer: PcapngWriter | None = None
        skipped: dict[str, int] = {}
        undirected = 0
        try:
            if args.output == "-":
                output: BinaryIO = sys.stdout.buffer
            else:
                output = stack.enter_context(open(args.output, "wb"))
            writer = PcapngWriter(output, args.linktype)
            for frame in frames:
                if frame.data is None:
                    assert frame.problem is not None
                    skipped[frame.problem.value] = skipped.get(frame.problem.value, 0) + 1
                    continue
                if frame.direction is None:
                    undirected += 1
                    if args.linktype == 177:
                        skipped["no direction"] = skipped.get("no direction", 0) + 1
                        continue
                writer.write(frame.data, frame.time_ns, frame.direction)
                if live:
                    output.flush()  # a capture stopped with Ctrl-C stays whole
            output.flush()
        except KeyboardInterrupt:
            pass
        except OSError as error:
            print(f"{PROGRAM}: cannot write {args.output}: {error}", file=sys.stderr)
            return EXIT_FAILURE
        if writer is None:
            return EXIT_FAILURE
        print(
            f"{PROGRAM}: {writer.frames} frames written to {args.output}"
            + (f", {undirected} without a direction" if undirected else "")
            + (f"; not written: {skipped}" if skipped else ""),
            file=sys.stderr,
        )
        return frames.report()


# -- monitor -----------------------------------------------------------------------------------


def run_monitor(args: argparse.Namespace) -> int:
    from drivers.e1.decode import TapDecoder

    tap = TapDecoder(args.line)
    show = _Shower(args.json)
    try:
        if args.format == "lapd" or _streams_are_urls(args):
            code = _monitor_source(args, tap, show)
        else:
            code = _monitor_files(args, tap, show)
    except InputError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        code = EXIT_OK
    except BrokenPipeError:
        return EXIT_OK
    show.summary(tap)
    return code


def _streams_are_urls(args: argparse.Namespace) -> bool:
    """Whether --from-* name something other than regular files (sockets, serial ports)."""
    if args.format is None:
        return False
    streams = [s for s in (args.from_network, args.from_user) if s is not None]
    return any("://" in s or not Path(s).is_file() for s in streams)


def _monitor_files(args: argparse.Namespace, tap: TapDecoder, show: _Shower) -> int:
    import time

    with contextlib.ExitStack() as stack:
        frames = Frames(args, stack)
        began = time.monotonic()
        first: int | None = None
        for frame in frames:
            first = frame.time_ns if first is None else first
            if args.speed > 0:
                due = began + (frame.time_ns - first) / NANOSECONDS / args.speed
                time.sleep(max(0.0, due - time.monotonic()))
            for change in tap.feed(frame):
                show.change(frame.time_ns, change)
        for deframer in frames.deframers:
            for event in deframer.line_events:
                show.line_event(deframer.direction.value, event)
        return frames.report()


def _monitor_source(args: argparse.Namespace, tap: TapDecoder, show: _Shower) -> int:
    def clock(time_ns: int) -> None:  # line time passes: silence takes links and calls down
        for change in tap.tick(time_ns / NANOSECONDS):
            show.change(time_ns, change)

    frames = SourceFrames(args, show.line_event, clock)
    for frame in frames:
        for change in tap.feed(frame):
            show.change(frame.time_ns, change)
    return frames.report()


class SourceFrames:
    """The frames of a span source given by URLs (``drivers/e1/sources.py``: sockets, serial
    ports, FIFOs, files), deframed per direction and handed on in time order."""

    def __init__(
        self,
        args: argparse.Namespace,
        on_line_event: Callable[[str, Any], None] | None = None,
        on_time: Callable[[int], None] | None = None,
    ) -> None:
        from drivers.e1.sources import SpanSource

        _check_inputs(args)
        self.args = args
        self.on_line_event = on_line_event
        self.on_time = on_time  # called with the line time every direction has reached
        self.problems: list[str] = []
        start = parse_start(args.start) / NANOSECONDS if args.start else None
        try:
            self.source = SpanSource(
                args.from_network,
                args.from_user,
                format={"hdlc": "timeslot", "e1": "e1", "lapd": "lapd"}[args.format],
                bit_order=args.bit_order,
                speed=getattr(args, "speed", 0.0),
                start_time=start,
            )
        except ValueError as error:
            raise InputError(str(error)) from None

    def __iter__(self) -> Iterator[TapFrame]:
        from drivers.e1.decode import StreamDeframer, TapFrame, TimeOrder
        from drivers.e1.sources import SourceError

        args = self.args
        deframers: dict[Any, StreamDeframer] = {}
        order = TimeOrder(self.source.directions)
        rate = OCTETS_PER_SECOND[args.format]
        try:
            with self.source:
                for chunk in self.source.chunks(timeout=0.5):
                    chunk_ns = round(chunk.timestamp * NANOSECONDS)
                    if args.format == "lapd":  # frames stamped as they came: arrival order
                        yield TapFrame(chunk_ns, chunk.direction, chunk.data)
                        continue
                    deframer = deframers.get(chunk.direction)
                    if deframer is None:
                        deframer = deframers[chunk.direction] = StreamDeframer(
                            chunk.direction, args.format, start_ns=chunk_ns, timeslot=args.timeslot
                        )
                    frames = deframer.feed(chunk.data)
                    if self.on_line_event is not None:
                        for event in deframer.line_events:
                            self.on_line_event(chunk.direction.value, event)
                    deframer.line_events.clear()
                    reached = chunk_ns + len(chunk.data) * NANOSECONDS // rate
                    yield from order.add(chunk.direction, frames, reached)
                    if self.on_time is not None and order.reached is not None:
                        self.on_time(order.reached)
        except SourceError as error:
            self.problems.append(str(error))
        yield from order.flush()

    def report(self) -> int:
        for problem in self.problems:
            print(f"{PROGRAM}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT if self.problems else EXIT_OK


class _Shower:
    """Prints monitor lines (or JSON Lines) as changes come."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    @staticmethod
    def _clock(time_ns: int) -> str:
        moment = datetime.fromtimestamp(time_ns / NANOSECONDS, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def change(self, time_ns: int, change: Any) -> None:
        from drivers.e1.calls import CallChange
        from drivers.e1.decode import describe_change

        if not self.as_json:
            _print(f"{self._clock(time_ns)} {describe_change(change)}")
            sys.stdout.flush()
            return
        t = round(time_ns / NANOSECONDS, 6)
        if isinstance(change, CallChange):
            body = {"t": t, "kind": "call", "change": change.kind.value}
            body["call"] = change.call.to_json_dict()
        else:
            body = {
                "t": t,
                "kind": "link",
                "sapi": change.sapi,
                "tei": change.tei,
                "state": change.state.value,
                "reason": change.reason.value,
            }
        _print(json.dumps(body, ensure_ascii=False))
        sys.stdout.flush()

    def line_event(self, direction: str, event: Any) -> None:
        name = type(event).__name__
        detail = getattr(event, "detail", None) or getattr(event, "defect", "")
        time_ns = round(event.time * NANOSECONDS)
        if self.as_json:
            body = {"t": round(event.time, 6), "kind": "line", "dir": direction, "event": name}
            body["detail"] = str(detail)
            _print(json.dumps(body))
        else:
            _print(f"{self._clock(time_ns)} E1 {direction}: {name} {detail}")

    def summary(self, tap: TapDecoder) -> None:
        calls = tap.calls()
        outcomes: dict[str, int] = {}
        for call in calls:
            key = call.outcome.value if call.outcome else ("open" if not call.released_at else "?")
            outcomes[key] = outcomes.get(key, 0) + 1
        links = {f"{s}/{t}": link.state.value for (s, t), link in tap.monitor.links.items()}
        counters = tap.monitor.counters
        summary = {
            "frames": tap.counters.frames,
            "bad_frames": dict(tap.counters.bad_frames),
            "retransmissions": counters.retransmissions,
            "links": links,
            "calls": len(calls),
            "outcomes": outcomes,
        }
        if self.as_json:
            _print(json.dumps({"kind": "summary", **summary}))
        else:
            print(f"{PROGRAM}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
