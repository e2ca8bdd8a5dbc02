"""The udev rules, read as udev reads them: every rule guarded to tty devices on USB, every
modem kept from ModemManager, every name a SYMLINK+= under /dev/edge112 by interface number."""

from __future__ import annotations

import re
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
MODEMS = {
    "2c7c:0125": {"02": "at", "01": "audio", "03": "ppp"},
    "1e0e:9001": {"02": "at", "04": "audio", "03": "ppp"},
}


def rules(name: str) -> list[str]:
    return [
        line.strip()
        for line in (SYSTEMD / name).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_modem_rules_are_guarded_to_usb_ttys() -> None:
    lines = rules("99-edge112-modems.rules")
    assert lines[:3] == [
        'ACTION=="remove", GOTO="edge112_modems_end"',
        'SUBSYSTEM!="tty", GOTO="edge112_modems_end"',
        'ENV{ID_BUS}!="usb", GOTO="edge112_modems_end"',
    ]
    assert lines[-1] == 'LABEL="edge112_modems_end"'
    for line in lines:
        assert "NAME=" not in line, "udev names a device only with SYMLINK+="


def test_each_modem_port_gets_its_role_name_and_modemmanager_keeps_away() -> None:
    lines = rules("99-edge112-modems.rules")
    for ids, ports in MODEMS.items():
        vendor, product = ids.split(":")
        match = f'ENV{{ID_VENDOR_ID}}=="{vendor}", ENV{{ID_MODEL_ID}}=="{product}"'
        assert f'{match}, ENV{{ID_MM_DEVICE_IGNORE}}="1"' in lines
        for interface, role in ports.items():
            expected = (
                f'{match}, ENV{{ID_USB_INTERFACE_NUM}}=="{interface}", '
                f'SYMLINK+="edge112/$env{{ID_SERIAL_SHORT}}-{role}"'
            )
            assert expected in lines
    assert 'ENV{ID_VENDOR_ID}=="12d1", ENV{ID_MM_DEVICE_IGNORE}="1"' in lines


def test_gpio_rules_give_the_gpio_group_the_devices() -> None:
    lines = rules("99-edge112-gpio.rules")
    assert 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' in lines
    assert 'KERNEL=="gpiomem*", GROUP="gpio", MODE="0660"' in lines
    for line in lines:
        for key in re.findall(r"(\w+)(?:\{[^}]*\})?[!=+]?=", line):
            assert key in {"SUBSYSTEM", "KERNEL", "GROUP", "MODE", "ACTION", "DRIVER", "RUN"}
