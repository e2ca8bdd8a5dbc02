"""Scenario ``[[faults]]``: modem resets, hangs, re-enumeration, registration and SMS at set times.

One table per fault, ``kind`` saying which, in seconds from the start::

    [[faults]]
    at_s = 5.0
    kind = "reset"          # the modem resets itself: call lost, settings lost, boot banner
                            # (a Huawei stick re-enumerates instead)
    [[faults]]
    at_s = 8.0
    kind = "replug"         # the USB device vanishes and returns under a new node
    [[faults]]
    at_s = 12.0
    kind = "hang"           # answers nothing until the named recovery (or stronger):
    cured_by = "power_cut"  # reset (AT+CFUN=1,1) | power_key | power_cut | never
    [[faults]]
    at_s = 20.0
    kind = "registration"
    status = 2              # 27.007 <stat>: 1 home, 2 searching, 3 denied, 5 roaming
    [[faults]]
    at_s = 25.0
    kind = "sms"            # the network delivers a message to the SIM (+CMTI)
    number = "+6281234567890"
    text = "Tolong"         # or aml = true (an AML location text), or pdu = "<hex>" as is
    encoding = "gsm7"       # gsm7 | ucs2; a text too long for one SMS goes in parts
    reverse_parts = false   # true: the parts arrive last first

A hung modem stays hung unless the gateway's recovery ladder reaches it; in
a standalone ``edge112 sim gsm`` nothing cuts its power, so ``cured_by``
``reset`` is the one a gateway can cure there, unless the modem follows a
simulated board's power pins (``--board-state``, ``[board.modems.<line>]
model = "simulated"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.simulated.gsm_modem import Cure, SimulatedGsmModem
from drivers.simulated.sms_deliver import aml_text, split_message

FAULT_KINDS = ("reset", "replug", "hang", "registration", "sms")
_KEYS = {
    "reset": set(),
    "replug": set(),
    "hang": {"cured_by"},
    "registration": {"status"},
    "sms": {"number", "text", "aml", "pdu", "encoding", "reverse_parts"},
}
DEFAULT_SMS_NUMBER = "+6281234567890"


@dataclass(frozen=True)
class ScheduledFault:
    at_s: float
    kind: str
    apply: Callable[[SimulatedGsmModem], None]


def parse_fault(entry: dict[str, Any], where: str, error: type[ValueError]) -> ScheduledFault:
    """One ``[[faults]]`` table; ``error`` (the scenario's error class) for any problem."""
    kind = entry.get("kind")
    if kind not in FAULT_KINDS:
        raise error(f"{where}: kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    unknown = sorted(set(entry) - {"at_s", "kind"} - _KEYS[kind])
    if unknown:
        raise error(f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}")
    at_s = entry.get("at_s", 0.0)
    if isinstance(at_s, bool) or not isinstance(at_s, int | float) or at_s < 0:
        raise error(f"{where} at_s: expected a number of seconds >= 0, got {at_s!r}")
    try:
        action = _BUILDERS[kind](entry)
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{where}: {exc}") from exc
    return ScheduledFault(float(at_s), kind, action)


def _reset(_entry: dict[str, Any]) -> Callable[[SimulatedGsmModem], None]:
    return lambda modem: modem.reboot()


def _replug(_entry: dict[str, Any]) -> Callable[[SimulatedGsmModem], None]:
    return lambda modem: modem.replug()


def _hang(entry: dict[str, Any]) -> Callable[[SimulatedGsmModem], None]:
    name = entry.get("cured_by", "power_cut")
    if not isinstance(name, str) or name.upper() not in Cure.__members__:
        choices = ", ".join(cure.name.lower() for cure in Cure)
        raise ValueError(f"cured_by must be one of {choices}, got {name!r}")
    cure = Cure[name.upper()]
    return lambda modem: modem.hang(cure)


def _registration(entry: dict[str, Any]) -> Callable[[SimulatedGsmModem], None]:
    status = entry.get("status")
    if isinstance(status, bool) or status not in (0, 1, 2, 3, 4, 5):
        raise ValueError(f"status must be a 27.007 <stat> 0-5, got {status!r}")
    return lambda modem: modem.set_registration(status)


def _sms(entry: dict[str, Any]) -> Callable[[SimulatedGsmModem], None]:
    sources = [key for key in ("text", "aml", "pdu") if key in entry]
    if len(sources) != 1:
        raise ValueError("give exactly one of text, aml = true, pdu")
    number = entry.get("number", DEFAULT_SMS_NUMBER)
    if not isinstance(number, str) or not number:
        raise ValueError(f"number must be a string, got {number!r}")
    if "pdu" in entry:
        pdus = [str(entry["pdu"])]
    else:
        text = aml_text() if entry.get("aml") is True else entry.get("text")
        if not isinstance(text, str):
            raise ValueError("text must be a string (or aml = true)")
        encoding = entry.get("encoding", "gsm7")
        if encoding not in ("gsm7", "ucs2"):
            raise ValueError(f"encoding must be gsm7 or ucs2, got {encoding!r}")
        pdus = split_message(number, text, encoding=encoding)
    if entry.get("reverse_parts", False) is True:
        pdus = pdus[::-1]

    def deliver(modem: SimulatedGsmModem) -> None:
        for pdu in pdus:
            modem.deliver_sms(pdu)

    return deliver


_BUILDERS: dict[str, Callable[[dict[str, Any]], Callable[[SimulatedGsmModem], None]]] = {
    "reset": _reset,
    "replug": _replug,
    "hang": _hang,
    "registration": _registration,
    "sms": _sms,
}
