"""Technician commands for GSM lines: ``edge112 modem probe|at|record`` and ``edge112 sms decode``.

::

    edge112 modem probe [--port URL ...] [--config FILE] [--timeout S] [--json]
        every serial port (/dev/serial/by-id/*, ttyUSB*, ttyACM*; or the --port URLs):
        identity, SIM, operator, registration, signal, VoLTE, readiness, and the
        configured line it serves; progress on stderr; exit 0 when every modem found
        is ready, 1 otherwise (or none found)
    edge112 modem at URL COMMAND... [--timeout S] [--listen S] [--json]
        raw AT through the gateway's AtChannel: response lines and URCs seen (during the
        commands, and --listen seconds after them); exit 1 on ERROR, timeout or a port
        that does not open
    edge112 modem record URL --out FILE [--seconds N]
        run the real driver (monitor only, never answers) on record://URL for N seconds:
        FILE is a transcript (drivers.transcript) that ``edge112 sim replay`` plays back;
        the events the driver saw go to stdout as JSON lines
    edge112 sms decode PDU [--json]
        one stored PDU (SMSC field first, as AT+CMGR shows it): sender, time, text,
        concatenation, and the AML location when it is one; a bad PDU exits 2 with the reason

Exit codes as ``gateway.cli``: 0 success, 1 runtime failure, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_BAUDRATE = 115200
PROBE_TIMEOUT_S = 0.6  # an AT port answers AT in milliseconds; other ports are passed over
AT_TIMEOUT_S = 5.0
RECORD_SECONDS = 60.0
RECORD_HEALTH_INTERVAL_S = 10.0  # readiness queries in a recording, for the replay to answer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``modem`` and ``sms`` to the ``edge112`` command."""
    modem = commands.add_parser("modem", help="GSM modems: probe ports, raw AT, record sessions")
    actions = modem.add_subparsers(dest="action", required=True, metavar="ACTION")

    probe = actions.add_parser("probe", help="identify every modem on the serial ports")
    probe.add_argument("--port", action="append", metavar="URL", help="probe only these (repeat)")
    probe.add_argument("--config", help="name the configured line each modem serves")
    probe.add_argument("--baudrate", type=int, default=DEFAULT_BAUDRATE)
    probe.add_argument(
        "--timeout",
        type=float,
        default=PROBE_TIMEOUT_S,
        help=f"seconds to wait for AT on each port (default {PROBE_TIMEOUT_S})",
    )
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(func=cmd_probe)

    at = actions.add_parser("at", help="send raw AT commands and show the answers")
    at.add_argument("url", help="the port: a device path or any pyserial URL")
    at.add_argument("commands", nargs="+", metavar="COMMAND")
    at.add_argument("--baudrate", type=int, default=DEFAULT_BAUDRATE)
    at.add_argument("--timeout", type=float, default=AT_TIMEOUT_S, help="seconds per command")
    at.add_argument(
        "--listen", type=float, default=0.0, metavar="S", help="then show URCs for S seconds"
    )
    at.add_argument("--json", action="store_true")
    at.set_defaults(func=cmd_at)

    record = actions.add_parser("record", help="record a session as a replayable transcript")
    record.add_argument("url", help="the modem's AT port")
    record.add_argument("--out", required=True, type=Path, metavar="FILE")
    record.add_argument("--seconds", type=float, default=RECORD_SECONDS)
    record.add_argument("--baudrate", type=int, default=DEFAULT_BAUDRATE)
    record.set_defaults(func=cmd_record)

    sms = commands.add_parser("sms", help="SMS tools").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    decode = sms.add_parser("decode", help="decode one PDU (AML locations too)")
    decode.add_argument("pdu", help="hex, SMSC field first (as AT+CMGR shows it)")
    decode.add_argument("--json", action="store_true")
    decode.set_defaults(func=cmd_sms_decode)


# modem probe ---------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    from drivers.gsm.binding import candidate_ports
    from drivers.gsm.probe import probe_port

    lines = _configured_lines(args.config) if args.config else []
    ports = args.port or candidate_ports()
    if not ports:
        print("edge112 modem probe: no serial ports found", file=sys.stderr)
    documents = []
    for number, port in enumerate(ports, 1):
        print(f"[{number}/{len(ports)}] probing {port} ...", file=sys.stderr, flush=True)
        report = probe_port(port, args.baudrate, args.timeout)
        document = report.as_dict()
        document["line"] = _line_served(report.port, report.imei, report.iccid, lines)
        documents.append(document)
        print(f"[{number}/{len(ports)}] {port}: {_summary(document)}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(documents, indent=2))
    else:
        for document in documents:
            _print_report(document)
    modems = [document for document in documents if document["identified"]]
    return EXIT_OK if modems and all(document["ready"] for document in modems) else EXIT_FAILURE


def _configured_lines(path: str) -> list[tuple[str, str]]:
    """(line name, port) of each [[modems]] entry."""
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"edge112: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return [(modem.name, modem.port) for modem in config.modems]


def _line_served(
    port: str, imei: str | None, iccid: str | None, lines: list[tuple[str, str]]
) -> str | None:
    for name, configured in lines:
        kind, _, value = configured.partition(":")
        if kind.lower() == "imei" and imei and value.strip() == imei:
            return name
        if kind.lower() == "iccid" and iccid and value.strip() == iccid:
            return name
        if configured == port or os.path.realpath(configured) == os.path.realpath(port):
            return name
    return None


def _summary(document: dict[str, Any]) -> str:
    if not document["identified"]:
        return document["error"] or "no modem"
    modem = f"{document['manufacturer'] or '?'} {document['model'] or '?'}"
    state = "ready" if document["ready"] else "NOT READY: " + ", ".join(document["reasons"])
    return f"{modem}, {state}"


def _print_report(document: dict[str, Any]) -> None:
    print(document["port"])
    if not document["identified"]:
        print(f"  {document['error'] or 'no modem'}")
        return
    rows = [
        ("modem", f"{document['manufacturer']} {document['model']} ({document['revision']})"),
        ("imei", document["imei"]),
        ("line", document["line"] or "(not in the configuration)"),
        ("sim", f"{document['sim_state']}, iccid {document['iccid']}, imsi {document['imsi']}"),
        ("network", f"{document['registration']} {document['registrations']}"),
        ("operator", f"{document['operator']} ({document['operator_code']}), {document['rat']}"),
        ("signal", _signal_text(document)),
        ("volte/ims", document["ims"]),
        ("ready", "yes" if document["ready"] else "NO: " + ", ".join(document["reasons"])),
    ]
    for label, value in rows:
        print(f"  {label:10} {value}")


def _signal_text(document: dict[str, Any]) -> str:
    parts = [f"{document['signal_dbm']} dBm (CSQ)"]
    for key, unit in (("rsrp_dbm", "dBm RSRP"), ("rsrq_db", "dB RSRQ"), ("sinr_db", "dB SINR")):
        if document[key] is not None:
            parts.append(f"{document[key]} {unit}")
    return ", ".join(parts)


# modem at ------------------------------------------------------------------------------


def cmd_at(args: argparse.Namespace) -> int:
    from drivers.at_channel import PORT_ERRORS, AtChannel, AtCommandError, AtError

    urcs: list[str] = []
    results: list[dict[str, Any]] = []
    open_errors: tuple[type[BaseException], ...] = (*PORT_ERRORS, ValueError)
    try:
        channel = AtChannel(args.url, on_urc=urcs.append, baudrate=args.baudrate, name=args.url)
    except open_errors as exc:
        print(f"edge112 modem at: cannot open {args.url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    failed = False
    with channel:
        for command in args.commands:
            result: dict[str, Any] = {"command": command, "lines": [], "final": None, "error": None}
            try:
                result["lines"] = channel.command(command, args.timeout)
                result["final"] = "OK"
            except AtCommandError as exc:
                result.update(lines=exc.lines, final=exc.final, error=str(exc))
            except AtError as exc:
                result["error"] = str(exc)
            results.append(result)
            if result["error"] is not None:
                failed = True
                break  # the modem is in doubt: do not send the rest
        if args.listen > 0 and not failed:
            time.sleep(args.listen)
    if args.json:
        print(json.dumps({"results": results, "urcs": urcs}, indent=2))
    else:
        for result in results:
            print(f"> {result['command']}")
            for line in result["lines"]:
                print(line)
            print(result["final"] or f"(no final result: {result['error']})")
        for urc in urcs:
            print(f"URC {urc}")
    return EXIT_FAILURE if failed else EXIT_OK


# modem record --------------------------------------------------------------------------


def record_url(url: str, out: Path) -> str:
    """The ``record://`` URL that wraps ``url`` and writes ``out``."""
    return f"record://{url}?file={urllib.parse.quote(str(out), safe='/')}"


def cmd_record(args: argparse.Namespace) -> int:
    from drivers.gsm.modem import GsmModemDriver
    from gateway.events import Event, LineStatus, envelope

    if args.seconds <= 0:
        print("edge112 modem record: --seconds must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.out.exists():
        args.out.unlink()  # a fresh recording; the handler would write <stem>.1 otherwise
    seq = 0
    lock = threading.Lock()
    came_up = threading.Event()

    def emit(event: Event) -> None:
        nonlocal seq
        with lock:
            seq += 1
            document = envelope(event, seq=seq, gateway_id="record", region="00.00")
            print(json.dumps(document), flush=True)
        if isinstance(event, LineStatus) and event.state == "up":
            came_up.set()

    driver = GsmModemDriver(
        "record",
        record_url(args.url, args.out),
        emit,
        baudrate=args.baudrate,
        signal_interval_s=min(RECORD_HEALTH_INTERVAL_S, args.seconds),
        reopen_backoff_max_s=2.0,
    )
    print(f"edge112 modem record: {args.url} -> {args.out} for {args.seconds:g} s", file=sys.stderr)
    driver.start()
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        driver.stop()
    files = sorted({args.out, *args.out.parent.glob(f"{args.out.stem}.*{args.out.suffix}")})
    written = [str(path) for path in files if path.exists()]
    print(f"edge112 modem record: wrote {', '.join(written) or 'nothing'}", file=sys.stderr)
    if not came_up.is_set():
        print("edge112 modem record: the modem never came up", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# sms decode ----------------------------------------------------------------------------


def cmd_sms_decode(args: argparse.Namespace) -> int:
    from drivers.gsm.sms.aml import AmlError, aml_text_of, parse_aml
    from drivers.gsm.sms.pdu import PduError, SmsStatusReport, decode_pdu

    try:
        message = decode_pdu(args.pdu)
    except PduError as exc:
        print(f"edge112 sms decode: bad PDU: {exc}", file=sys.stderr)
        return EXIT_USAGE
    document: dict[str, Any]
    if isinstance(message, SmsStatusReport):
        document = {"kind": "status_report", **asdict(message)}
    else:
        text = message.text
        document = {
            "kind": "deliver",
            "smsc": message.smsc,
            "sender": message.sender,
            "timestamp": message.timestamp.isoformat(),
            "encoding": str(message.encoding),
            "protocol_id": message.protocol_id,
            "text": text,
            "data_hex": None if text is not None else message.payload.hex(),
            "concatenation": asdict(message.concatenation) if message.concatenation else None,
            "destination_port": message.destination_port,
            "aml": None,
        }
        aml_text = aml_text_of(text, None if text is not None else message.payload)
        if aml_text is not None:
            try:
                location = parse_aml(aml_text)
            except AmlError as exc:
                document["aml"] = {"error": str(exc)}
            else:
                document["aml"] = asdict(location)
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        for key, value in document.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for inner, inner_value in value.items():
                    print(f"  {inner:16} {inner_value}")
            else:
                print(f"{key:17} {value}")
    return EXIT_OK
