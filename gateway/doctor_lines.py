"""``edge112 doctor``'s line checks: each modem and each E1 span, probed or asked live.

Modems (``[[modems]]``), one check each of::

    modem.gsm0     present and answering AT; its identity (maker, model, IMEI)
    sim.gsm0       AT+CPIN? says READY (not SIM PIN, SIM PUK, not inserted)
    network.gsm0   AT+CREG? / AT+CEREG? registered (home or roaming)
    signal.gsm0    AT+CSQ at or above --min-signal-dbm (default -105 dBm)

Spans (``[[spans]]``): ``span.e1a`` reads about a second of each direction
(``SPAN_SAMPLE_S`` of line, ``SPAN_READ_TIMEOUT_S`` at most) and, for an
``e1`` stream, frames it (``drivers.e1.framing.E1Receiver``): PASS when both
directions are frame aligned with no defect, FAIL with the defect (LOS,
AIS, LOF, RAI, CRC-4 errors) otherwise. ``timeslot`` and ``lapd`` streams
carry no framing: the check says whether data flows.

When the gateway runs (its control socket answered), the ports and streams
are its own: a modem port is open exclusively, and a second reader of a
FIFO would steal the gateway's data. Each line is then checked from the
gateway's live state instead (``line.status``: up or down, and why); stop
the gateway for a full probe. ``modemmanager`` says whether ModemManager
holds a modem port or may probe it (it runs and the port's udev record
lacks ``ID_MM_DEVICE_IGNORE=1``).

Modems are probed with ``drivers.gsm.probe.probe_port`` (the same queries
as the driver's health poll and ``edge112 modem probe``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.config import Config
from gateway.doctor import FAIL, MODEM_MANAGER, PASS, WARN, Check, Report, _processes_holding

SPAN_SAMPLE_S = 1.0
SPAN_READ_TIMEOUT_S = 4.0
UDEV_DATA = Path("/run/udev/data")
if TYPE_CHECKING:  # drivers are plug-ins: imported when a modem is probed
    from drivers.gsm.probe import ModemReport

PROC = Path("/proc")
_KEY = {"n2u": "network_to_user", "u2n": "user_to_network"}  # as [[spans]] names them

_SIM_TEXT = {
    "pin_required": ("the SIM asks for its PIN", "disable the PIN lock in a phone, then refit"),
    "puk_required": ("the SIM is PUK-locked", "ask the operator for the PUK or a new SIM"),
    "not_inserted": ("no SIM", "insert a SIM (power off first) and check its contacts"),
}
_REGISTRATION_TEXT = {
    "not_searching": "not registered, not searching",
    "searching": "not registered, searching",
    "denied": "registration denied by the network",
    "emergency_only": "emergency calls only",
}


def _live_lines(live: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if live is None:
        return {}
    lines = [line for line in live.get("lines", []) if isinstance(line, dict)]
    return {str(line.get("line")): line for line in lines}


def _check_live_line(name: str, line: dict[str, Any] | None, report: Report, fix: str) -> None:
    if line is None:
        report(Check(name, WARN, "the running gateway does not report this line", fix))
        return
    state, detail = line.get("state"), line.get("detail")
    message = f"running gateway: {state}, {detail}"
    if state == "up":
        report(Check(name, PASS, message + " (stop the gateway for a full probe)"))
    else:
        report(Check(name, FAIL, message, fix))


def check_modems(
    config: Config,
    report: Report,
    live: dict[str, Any] | None,
    progress: Callable[[str], None],
    min_signal_dbm: int,
) -> None:
    from drivers.gsm.probe import probe_port

    lines = _live_lines(live)
    for modem in config.lines_of("gsm"):
        name = modem.name
        port = str(getattr(modem, "port", ""))
        baudrate = int(getattr(modem, "baudrate", 115200))
        progress(f"modem {name} ({port})")
        if live is not None:
            _check_live_line(
                f"modem.{name}", lines.get(name), report, "`journalctl -u edge112 -e` for this line"
            )
            continue
        url = port
        if port.partition(":")[0].lower() in ("imei", "iccid"):
            from drivers.gsm.binding import NoModemFoundError, find_at_port, parse_binding

            try:
                url = find_at_port(parse_binding(port), baudrate=baudrate)
            except NoModemFoundError as error:
                fix = "plug the modem in, or correct the IMEI/ICCID in port ="
                report(Check(f"modem.{name}", FAIL, str(error), fix))
                continue
        _report_modem(name, url, probe_port(url, baudrate), report, min_signal_dbm)


def _report_modem(
    name: str, url: str, found: ModemReport, report: Report, min_signal_dbm: int
) -> None:
    if not found.present or not found.identified:
        fix = "check the cable, the power and port = (`ls -l /dev/serial/by-id`)"
        report(Check(f"modem.{name}", FAIL, f"{url}: {found.error}", fix))
        return
    who = " ".join(p for p in (found.manufacturer, found.model) if p) or "unidentified modem"
    who += f" ({found.revision})" if found.revision else ""
    if found.error is not None:
        fix = "the modem stopped answering: power-cycle it"
        report(Check(f"modem.{name}", WARN, f"{url}: {who}; then {found.error}", fix))
    elif found.imei is None:
        report(Check(f"modem.{name}", WARN, f"{url}: {who}, no IMEI", "check its firmware"))
    else:
        report(Check(f"modem.{name}", PASS, f"{url}: {who}, IMEI {found.imei}"))
    sim = found.sim_state
    if sim == "ready":
        report(
            Check(f"sim.{name}", PASS, "SIM ready" + (f", ICCID {found.iccid}" * bool(found.iccid)))
        )
    else:
        text, fix = _SIM_TEXT.get(sim or "", (f"SIM not ready ({sim})", "check the SIM"))
        report(Check(f"sim.{name}", FAIL, text, fix))
    registration = found.registration
    where = ", ".join(str(p) for p in (found.operator or found.operator_code, found.rat) if p)
    if registration in ("home", "roaming"):
        if "ims_not_registered" in found.reasons:
            text = f"registered on {found.rat or 'LTE'} only, and VoLTE (IMS) is not registered"
            report(Check(f"network.{name}", FAIL, text, "enable VoLTE (IMS) or allow 2G"))
        else:
            text = f"registered ({registration}{', ' + where if where else ''})"
            report(Check(f"network.{name}", PASS, text))
    else:
        text = _REGISTRATION_TEXT.get(registration or "", f"not registered ({registration})")
        fix = "check the SIM is active, the antenna, and coverage (`AT+COPS=?`)"
        report(Check(f"network.{name}", FAIL, text, fix))
    dbm = found.signal_dbm
    if dbm is None:
        fix = "connect the antenna; move it near a window"
        report(Check(f"signal.{name}", WARN, "signal unknown (AT+CSQ 99)", fix))
    elif dbm < min_signal_dbm:
        fix = "a better antenna, or move it; calls drop on a weak signal"
        report(Check(f"signal.{name}", WARN, f"{dbm} dBm, below {min_signal_dbm} dBm", fix))
    else:
        report(Check(f"signal.{name}", PASS, f"{dbm} dBm"))


# ---------------------------------------------------------------- spans


def check_spans(
    config: Config,
    report: Report,
    live: dict[str, Any] | None,
    progress: Callable[[str], None],
) -> None:
    lines = _live_lines(live)
    for span in config.lines_of("e1"):
        name = span.name
        progress(f"span {name} (about {SPAN_SAMPLE_S:g} s of each direction)")
        if live is not None:
            _check_live_line(
                f"span.{name}", lines.get(name), report, "check the tap's cables and its E1 card"
            )
            continue
        report(sample_span(span))


def sample_span(span: Any) -> Check:
    """Read about a second of each direction of ``span`` (SpanSettings) and judge it."""
    from drivers.e1.framing import OCTETS_PER_SECOND, E1Receiver
    from drivers.e1.sources import SourceEnded, SourceError, SpanSource, StreamFormat

    name = f"span.{span.name}"
    try:
        source = SpanSource(
            span.network_to_user,
            span.user_to_network,
            format=span.format,
            bit_order=span.bit_order,
            speed=0,  # a replayed file: the same second, without waiting for it
            baudrate=span.baudrate,
        )
        source.open()
    except (SourceError, ValueError) as error:
        return Check(name, FAIL, str(error), "check the tap's URLs, cables and that it runs")
    stream_format = StreamFormat(span.format)
    wanted = (stream_format.octets_per_second or 0) * SPAN_SAMPLE_S
    octets = dict.fromkeys(source.directions, 0)
    frames = dict.fromkeys(source.directions, 0)
    receivers = {d: E1Receiver(crc4=span.crc4) for d in source.directions}
    deadline = time.monotonic() + SPAN_READ_TIMEOUT_S
    ended = ""
    try:
        while time.monotonic() < deadline:
            if wanted and all(count >= wanted for count in octets.values()):
                break
            chunk = source.read(timeout=max(0.0, deadline - time.monotonic()))
            if chunk is None:
                continue
            direction = chunk.direction
            octets[direction] += len(chunk.data)
            frames[direction] += 1
            if stream_format is StreamFormat.E1:
                receivers[direction].feed(chunk.data)
    except SourceEnded:
        ended = " (the replayed file ended)"
    except SourceError as error:
        return Check(name, FAIL, str(error), "check the tap and its connection")
    finally:
        source.close()
    return _judge_span(name, stream_format, octets, frames, receivers, ended, OCTETS_PER_SECOND)


def _judge_span(
    name: str,
    stream_format: Any,
    octets: dict[Any, int],
    frames: dict[Any, int],
    receivers: dict[Any, Any],
    ended: str,
    octets_per_second: int,
) -> Check:
    from drivers.e1.sources import StreamFormat

    silent = [_KEY[d.value] for d, count in octets.items() if count == 0]
    if silent:
        return Check(
            name,
            FAIL,
            f"no data from {', '.join(silent)} in {SPAN_READ_TIMEOUT_S:g} s{ended}",
            "check that direction's tap cable and that the tap streams",
        )
    if stream_format is not StreamFormat.E1:
        flowing = ", ".join(
            f"{_KEY[d.value]} {octets[d]} octets" + (f"/{frames[d]} frames" if frames[d] else "")
            for d in octets
        )
        return Check(name, PASS, f"{stream_format.value} stream: {flowing}{ended}")
    parts, bad = [], False
    for direction, receiver in receivers.items():
        state = receiver.state
        seconds = octets[direction] / octets_per_second
        parts.append(f"{_KEY[direction.value]}: {state.detail} ({seconds:.1f} s read)")
        bad = bad or not state.ok
    if bad:
        fix = "check the tap's cables, termination (120 ohm) and the span's crc4 ="
        return Check(name, FAIL, "; ".join(parts) + ended, fix)
    return Check(name, PASS, "; ".join(parts) + ended)


# ---------------------------------------------------------------- ModemManager


def _running_pids(name: str) -> list[int]:
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
    return pids


def mm_ignored(device: str) -> bool | None:
    """Whether udev tells ModemManager to leave ``device`` alone; None when unknown."""
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return None
    record = UDEV_DATA / f"c{os.major(rdev)}:{os.minor(rdev)}"
    try:
        text = record.read_text()
    except OSError:
        return None
    return "E:ID_MM_DEVICE_IGNORE=1" in text.splitlines()


def check_modem_manager_ports(config: Config, report: Report) -> None:
    ports = {
        modem.name: os.path.realpath(str(getattr(modem, "port", "")))
        for modem in config.lines_of("gsm")
        if str(getattr(modem, "port", "")).startswith("/dev/")
    }
    running = _running_pids(MODEM_MANAGER)
    if not running:
        report(Check("modemmanager", PASS, "ModemManager is not running"))
        return
    holders = _processes_holding(set(ports.values()))
    held = [
        f"{name} ({path})"
        for name, path in ports.items()
        if any(holder.startswith(MODEM_MANAGER) for holder in holders.get(path, []))
    ]
    if held:
        report(
            Check(
                "modemmanager",
                FAIL,
                f"ModemManager holds {', '.join(held)}",
                "install the edge112 udev rules and replug, or "
                "`systemctl disable --now ModemManager`",
            )
        )
        return
    exposed = [name for name, path in ports.items() if mm_ignored(path) is not True]
    if exposed:
        report(
            Check(
                "modemmanager",
                WARN,
                f"ModemManager runs and may probe {', '.join(exposed)} "
                "(no ID_MM_DEVICE_IGNORE=1 on the port)",
                "install the edge112 udev rules (`udevadm trigger`), or disable ModemManager",
            )
        )
        return
    report(Check("modemmanager", PASS, "ModemManager runs but ignores every modem port"))
