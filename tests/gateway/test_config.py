"""Configuration loading: the example is valid, every mistake is named exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import EXAMPLE_CONFIG, ConfigError, load_config, parse_config

MINIMAL = '[gateway]\nid = "bontang-01"\nregion = "64.74"\n'


def test_the_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert config.gateway.id == "bontang-01"
    assert config.gateway.region == "64.74"
    assert config.mqtt.port == 1883 and not config.mqtt.tls
    assert config.outbox.synchronous == "full"
    assert [modem.name for modem in config.modems] == ["gsm0"]


def test_defaults_fill_what_is_left_out() -> None:
    config = parse_config(MINIMAL)
    assert config.mqtt.url == "mqtt://127.0.0.1:1883"
    assert config.mqtt.inflight_window == 20
    assert config.outbox.max_bytes == 512 * 1024 * 1024
    assert config.modems == ()
    modem = parse_config(MINIMAL + "[[modems]]\nname = 'gsm0'\nport = '/dev/x'\n").modems[0]
    assert modem.metrics_interval_s == 300.0  # line.metrics every five minutes


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (MINIMAL + "[mqtt]\nurl = 'http://x'\n", "mqtt.url", "expected a URL"),
        (MINIMAL + "[mqtt]\nurll = 'mqtt://x'\n", "mqtt.urll", "unknown key"),
        (MINIMAL + "[outbox]\nsynchronous = 'off'\n", "outbox.synchronous", "'full', 'normal'"),
        (MINIMAL + "[outbox]\nmax_mb = 'big'\n", "outbox.max_mb", "expected a number"),
        (MINIMAL + "[mqtt]\ninflight_window = 0\n", "mqtt.inflight_window", "from 1 to 1000"),
        (MINIMAL + "[mqtt]\nkeepalive_s = true\n", "mqtt.keepalive_s", "expected an integer"),
        (MINIMAL + "[[modems]]\nname = 'gsm0'\n", "modems[0].port", "missing required key"),
        (
            MINIMAL + "[[modems]]\nname='a'\nport='/dev/x'\n[[modems]]\nname='a'\nport='/dev/y'\n",
            "modems[1].name",
            "duplicate modem name",
        ),
        ('[gateway]\nid = "bontang 01"\nregion = "64.74"\n', "gateway.id", "letters, digits"),
        ('[gateway]\nid = "b"\nregion = "Bontang"\n', "gateway.region", "kode wilayah"),
        ('[gateway]\nid = "b"\n', "gateway.region", "missing required key"),
        ("[gatway]\n", "gatway", "unknown section"),
        (MINIMAL + "[mqtt]\nca_file = '/etc/ca.pem'\n", "mqtt.url", "mqtts://"),
        (MINIMAL + "[audio]\nrecording_format = 'mp3'\n", "audio.recording_format", "'alaw'"),
        (MINIMAL + "[audio]\nrecord = 'yes'\n", "audio.record", "true or false"),
        (MINIMAL + "[audio]\nsilent_prompt = '/nope.wav'\n", "audio.silent_prompt", "no such file"),
        (
            MINIMAL + "[outbox]\npath = '/var/x/o.db'\n[audio]\nrecordings_dir = '/var/x'\n",
            "audio.recordings_dir",
            "outbox",
        ),
        (
            MINIMAL + "[[modems]]\nname='a'\nport='/dev/x'\naudio_port=3\n",
            "modems[0].audio_port",
            "non-empty string",
        ),
        (
            MINIMAL + "[[modems]]\nname='a'\nport='/dev/x'\nmetrics_interval_s=1\n",
            "modems[0].metrics_interval_s",
            "from 10 to 86400",
        ),
    ],
)
def test_each_mistake_names_file_key_and_expectation(text: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    assert caught.value.key == key
    assert expected in caught.value.problem
    assert str(caught.value).startswith(f"site.toml: {key}: ")


def test_broken_toml_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[gateway\nid=", "broken.toml")


def test_config_check_exits_2_on_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + "[mqtt]\nport = 1883\n")
    with pytest.raises(SystemExit) as exited:
        main(["config", "check", str(bad)])
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert str(bad) in message and "mqtt.port" in message and "unknown key" in message


def test_config_check_accepts_a_good_file_from_the_installed_command(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ok (gateway bontang-01, region 64.74" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "config", "check", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
