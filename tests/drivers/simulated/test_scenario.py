"""Scenario files, the random 112 call mix, playing them, and the ``edge112 sim gsm`` CLI."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import wave
from pathlib import Path

import pytest
import serial

from drivers.simulated import cli
from drivers.simulated.caller_audio import (
    AudioSegment,
    DtmfSegment,
    NoiseSegment,
    SilenceSegment,
    SpeechSegment,
)
from drivers.simulated.gsm_modem import CallOutcome, PlacedCall, SimulatedGsmModem
from drivers.simulated.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    play,
    random_calls,
)
from gateway.events import Presentation

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "scenario.toml"


def test_the_shipped_example_scenario_loads():
    scenario = load_scenario(EXAMPLE)

    assert (scenario.model, scenario.chunking, scenario.seed) == ("quectel_ec25", "random", 112)
    assert [call.call.presentation for call in scenario.calls] == [
        Presentation.ALLOWED,
        Presentation.RESTRICTED,
        Presentation.UNAVAILABLE,
    ]
    assert [call.at_s for call in scenario.calls] == [1.0, 2.0, 3.0]
    assert scenario.injections[0].raw == bytes.fromhex("fffe001b5b410d0a")
    assert scenario.injections[2].raw == b"X" * 600
    talker, _, silent = (scheduled.call for scheduled in scenario.calls)
    assert [type(segment) for segment in talker.audio] == [
        SilenceSegment,
        SpeechSegment,
        DtmfSegment,
        SpeechSegment,
    ]
    assert (silent.audio, silent.respond_to_prompt) == (
        (AudioSegment.noise(6.0, level_dbov=-65.0),),
        "55",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"callz": []}, "unknown key(s) callz"),
        ({"calls": [{"numbr": "+62811"}]}, "calls[0]: unknown key(s) numbr"),
        ({"calls": [{"presentation": "hidden"}]}, "calls[0]: 'hidden' is not a valid"),
        ({"calls": [{"number": "+62811", "presentation": "restricted"}]}, "must not have"),
        ({"calls": [{"at_s": -1}]}, "calls[0] at_s: expected a number of seconds"),
        ({"calls": [{"announce_end": "no"}]}, "announce_end: expected true or false"),
        ({"injections": [{"text": "a", "hex": "41"}]}, "exactly one of text or hex"),
        ({"injections": [{"hex": "zz"}]}, "injections[0]: hex"),
        ({"modem": {"model": "nokia_3310"}}, "unknown 'nokia_3310'"),
        ({"modem": {"chunking": "word"}}, "chunking: unknown 'word'"),
        ({"calls": {"at_s": 1}}, "array of tables"),
        ({"calls": [{"audio": {"silence": 1}}]}, "calls[0] audio: expected a list of tables"),
        ({"calls": [{"audio": [{"silence": 1, "speech": 2}]}]}, "audio[0]: give exactly one"),
        ({"calls": [{"audio": [{"level_dbov": -20}]}]}, "audio[0]: give exactly one of"),
        ({"calls": [{"audio": [{"speech": 1, "levl": -20}]}]}, "audio[0]: unknown key(s) levl"),
        ({"calls": [{"audio": [{"silence": 1, "seed": 2}]}]}, "unknown key(s) seed"),
        ({"calls": [{"audio": [{"silence": -1}]}]}, "audio[0] silence: expected a number"),
        ({"calls": [{"audio": [{"noise": 1, "level_dbov": 6}]}]}, "level in dB <= 0"),
        ({"calls": [{"audio": [{"dtmf": "5x"}]}]}, "audio[0]: DTMF digits must be"),
        ({"calls": [{"audio": [{"dtmf": "5", "tone_ms": "80"}]}]}, "number of milliseconds"),
        ({"calls": [{"audio": [{"wav": "missing.wav"}]}]}, "audio[0]: missing.wav: not a"),
        ({"calls": [{"respond_to_prompt": 55}]}, "respond_to_prompt: expected a string"),
        ({"calls": [{"respond_to_prompt": "help"}]}, "calls[0]: DTMF digits must be"),
    ],
)
def test_bad_scenarios_say_where_and_why(data, message):
    with pytest.raises(ScenarioError, match=r"^test\.toml") as raised:
        parse_scenario(data, "test.toml")

    assert message in str(raised.value)


def test_call_audio_from_a_scenario_file_with_a_wav_beside_it(tmp_path):
    with wave.open(str(tmp_path / "caller.wav"), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(bytes(1600))
    path = tmp_path / "audio.toml"
    path.write_text(
        "[[calls]]\n"
        "audio = [\n"
        "  {silence = 0.5},\n"
        "  {speech = 2, level_dbov = -25, seed = 3},\n"
        '  {wav = "caller.wav"},\n'
        "  {noise = 1.5},\n"
        '  {dtmf = "55", tone_ms = 60, gap_ms = 40, level_dbm0 = -12},\n'
        "]\n"
        'respond_to_prompt = "55"\n'
    )

    call = load_scenario(path).calls[0].call

    assert call.audio == (
        AudioSegment.silence(0.5),
        AudioSegment.speech(2.0, level_dbov=-25.0, seed=3),
        AudioSegment.wav(tmp_path / "caller.wav"),
        AudioSegment.noise(1.5, level_dbov=-60.0),
        AudioSegment.dtmf("55", tone_ms=60.0, gap_ms=40.0, level_dbm0=-12.0),
    )
    assert call.respond_to_prompt == "55"


def test_invalid_toml_is_a_scenario_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[[calls]\nat_s = 1\n")

    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)


def test_random_calls_are_reproducible_and_a_realistic_mix():
    calls = random_calls(400, rate=6.0, seed=11)

    assert calls == random_calls(400, rate=6.0, seed=11)
    assert calls != random_calls(400, rate=6.0, seed=12)
    presentations = {call.call.presentation for call in calls}
    assert presentations == set(Presentation)
    numbers = [call.call.number for call in calls if call.call.number]
    assert all(number.startswith("+628") and 12 <= len(number) <= 16 for number in numbers)
    impatient = sum(call.call.hangup_after_rings is not None for call in calls)
    assert 0.3 < impatient / len(calls) < 0.6
    gaps = [later.at_s - earlier.at_s for earlier, later in itertools.pairwise(calls)]
    assert all(gap >= 0 for gap in gaps)
    assert 8.0 < statistics.mean(gaps) < 12.0  # 6 calls per minute


def test_random_calls_give_ghosts_silence_and_talkers_speech():
    calls = [scheduled.call for scheduled in random_calls(400, rate=6.0, seed=11)]

    ghosts = [call for call in calls if call.talk_s <= 8.0]
    talkers = [call for call in calls if call.talk_s >= 20.0]
    assert ghosts and talkers and len(ghosts) + len(talkers) == len(calls)
    for ghost in ghosts:
        [segment] = ghost.audio
        assert isinstance(segment, SilenceSegment | NoiseSegment)
        assert isinstance(segment, SilenceSegment) or segment.level_dbov <= -55.0
        assert segment.duration_s == ghost.talk_s
    assert {type(ghost.audio[0]) for ghost in ghosts} == {SilenceSegment, NoiseSegment}
    assert 0.05 < sum(ghost.respond_to_prompt == "55" for ghost in ghosts) / len(ghosts) < 0.3
    for talker in talkers:
        assert isinstance(talker.audio[1], SpeechSegment)
        assert sum(segment.duration_s for segment in talker.audio) >= talker.talk_s
        assert talker.respond_to_prompt is None
    pressing = [t for t in talkers if any(isinstance(s, DtmfSegment) for s in t.audio)]
    assert 0.05 < len(pressing) / len(talkers) < 0.3


def test_play_places_calls_in_order_injects_and_reports_each_call(tmp_path):
    link = tmp_path / "modem"
    scenario = parse_scenario(
        {
            "calls": [
                {"at_s": 0.0, "number": "+6281234567890", "hangup_after_rings": 1,
                 "ring_interval_s": 0.05},
                {"at_s": 0.05, "hangup_after_rings": 2, "ring_interval_s": 0.05},
            ],
            "injections": [{"at_s": 0.0, "text": "\r\nGARBAGE\r\n"}],
        }
    )  # fmt: skip
    reported: list[int] = []

    def reported_sequence(call: PlacedCall) -> None:
        reported.append(call.sequence)

    with SimulatedGsmModem(link) as modem:
        port = serial.serial_for_url(str(link), timeout=0.05)
        placed = play(
            modem,
            scenario,
            stop=threading.Event(),
            on_call_done=lambda c: reported.append(c.sequence),
        )
        received = port.read(4096)
        port.close()

    assert reported == [1, 2]
    assert [(call.outcome, call.rings) for call in placed] == [
        (CallOutcome.ABANDONED, 1),
        (CallOutcome.ABANDONED, 2),
    ]
    assert received.startswith(b"\r\nGARBAGE\r\n")
    assert received.count(b"RING") == 3


def test_play_returns_early_when_stopped(tmp_path):
    scenario = parse_scenario({"calls": [{"at_s": 30.0}]})
    stop = threading.Event()
    stop.set()

    with SimulatedGsmModem(tmp_path / "modem") as modem:
        assert play(modem, scenario, stop=stop) == []


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=cli.PROG)
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_plays_a_scenario_and_prints_one_json_line_per_call(tmp_path, capsys):
    scenario = tmp_path / "two.toml"
    scenario.write_text(
        '[modem]\nmodel = "simcom_sim7600"\n'
        '[[calls]]\nnumber = "+6281234567890"\nhangup_after_rings = 1\nring_interval_s = 0.05\n'
        '[[calls]]\npresentation = "restricted"\nhangup_after_rings = 1\nring_interval_s = 0.05\n'
    )
    link = tmp_path / "gsm0"

    status = cli.run(
        parse_cli("--link", str(link), "--scenario", str(scenario), "--exit-when-done")
    )

    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [(r["call"], r["number"], r["presentation"], r["outcome"]) for r in records] == [
        (1, "+6281234567890", "allowed", "abandoned"),
        (2, None, "restricted", "abandoned"),
    ]
    assert all(isinstance(r["first_ring_wall"], float) for r in records)
    assert "simcom_sim7600" in err
    assert not link.is_symlink()


def test_cli_with_an_audio_link(tmp_path, capsys):
    link, audio_link = tmp_path / "gsm0", tmp_path / "gsm0-audio"
    argv = ["--link", str(link), "--audio-link", str(audio_link), "--calls", "1", "--rate", "600"]
    argv += ["--ring-interval", "0.02", "--seed", "4", "--exit-when-done"]

    assert cli.run(parse_cli(*argv)) == 0

    out, err = capsys.readouterr()
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["audio_frames_sent"] == 0 and record["pressed_digits"] is None
    assert f"audio on {audio_link} -> /dev/pts/" in err
    assert not audio_link.is_symlink()


def test_cli_random_calls(tmp_path, capsys):
    argv = ["--link", str(tmp_path / "gsm0"), "--calls", "2", "--rate", "600", "--seed", "4"]
    argv += ["--ring-interval", "0.02", "--exit-when-done"]

    assert cli.run(parse_cli(*argv)) == 0

    assert len(capsys.readouterr().out.splitlines()) == 2


def test_cli_exits_2_with_a_clear_message_on_a_bad_scenario(tmp_path, capsys):
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[[calls]]\nnumber = "+62811"\npresentation = "restricted"\n')

    status = cli.run(parse_cli("--link", str(tmp_path / "gsm0"), "--scenario", str(scenario)))

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("edge112 sim gsm: ") and "bad.toml calls[0]" in err
    assert not (tmp_path / "gsm0").exists()


def test_cli_refuses_rate_without_calls(tmp_path, capsys):
    assert cli.run(parse_cli("--link", str(tmp_path / "gsm0"), "--rate", "5")) == 2
    assert "--rate only goes with --calls" in capsys.readouterr().err


def test_cli_rejects_scenario_and_calls_together(tmp_path):
    with pytest.raises(SystemExit) as raised:
        parse_cli("--link", str(tmp_path / "gsm0"), "--scenario", "x.toml", "--calls", "3")
    assert raised.value.code == 2


def test_an_empty_scenario_is_valid():
    assert parse_scenario({}) == Scenario()
