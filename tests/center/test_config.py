"""The center's configuration: the example is valid, every problem names the file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from center.config import EXAMPLE_CONFIG, load_center_config, parse_center_config
from gateway.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_example_is_valid_and_equals_the_defaults() -> None:
    config = load_center_config(EXAMPLE_CONFIG)
    defaults = parse_center_config("", str(EXAMPLE_CONFIG))
    assert config == defaults
    assert config.stats.offset_minutes == 7 * 60
    assert "damkar" in config.desk.agencies


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[centre]\n", "centre", "unknown section"),
        ("[database]\nurl = 'mysql://x/y'\n", "database.url", "postgresql+psycopg://"),
        ("[database]\nurl = 'sqlite://'\n", "database.url", "needs a file"),
        ("[mqtt]\nurl = 'http://broker'\n", "mqtt.url", "mqtt://host:1883"),
        ("[mqtt]\nshare_group = 'a/b'\n", "mqtt.share_group", "letters, digits"),
        ("[mqtt]\nreceive_maximum = 0\n", "mqtt.receive_maximum", "from 1 to 65535"),
        ("[http]\nlisten = '8112'\n", "http.listen", "host:port"),
        ("[http]\ndesk_token = 'short'\n", "http.desk_token", "at least 16"),
        ("[completeness]\ngap_alarm_after_s = -1\n", "completeness.gap_alarm_after_s", "from 0"),
        ("[completeness]\nclock_earliest = '2020'\n", "completeness.clock_earliest", "YYYY-MM-DD"),
        ("[desk]\nagencies = ['Damkar']\n", "desk.agencies", "lower-case"),
        ("[desk]\nagencies = ['pln', 'pln']\n", "desk.agencies", "twice"),
        ("[stats]\nutc_offset = '7'\n", "stats.utc_offset", "+07:00"),
        ("[center]\nidd = 'x'\n", "center.idd", "unknown key"),
        ("[center\n", "", "not valid TOML"),
    ],
)
def test_a_bad_value_is_refused_with_file_and_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_center_config(text, "/etc/edge112/center.toml")
    assert raised.value.key == key
    assert problem in str(raised.value)
    assert str(raised.value).startswith("/etc/edge112/center.toml: ")


def test_the_command_checks_a_file_and_exits_2_on_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "center.toml"
    good.write_text('[center]\nid = "w1"\n[database]\nurl = "sqlite:////tmp/c.db"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nurl = 'ftp://x'\n")

    def edge112(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "center", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    checked = edge112("--check", "--config", str(good))
    assert checked.returncode == 0, checked.stderr
    assert "ok (center w1, database sqlite" in checked.stdout
    refused = edge112("--config", str(bad))
    assert refused.returncode == 2
    assert f"{bad}: mqtt.url: expected a URL" in refused.stderr
    example = edge112("--example")
    assert example.returncode == 0 and "[completeness]" in example.stdout
    assert edge112().returncode == 2
