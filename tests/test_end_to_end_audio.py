"""Call audio end to end: ``edge112 run`` with a modem audio port, a simulated caller who speaks.

The simulated modem carries the caller's audio on a second pseudo-terminal;
the gateway process runs the per-call pipeline and publishes ``call.dtmf``
and ``call.audio_summary`` (with the recording's path and checksum) after
``call.ended``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from drivers.simulated.audio_signals import speech_like, to_pcm
from drivers.simulated.caller_audio import AudioSegment
from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from gateway.audio.wav import read_wav, write_wav
from gateway.broker import PrivateBroker
from gateway.consumer import FeedMonitor
from tests.conftest import PROCESS_TIMEOUT_S, validate_event
from tests.test_end_to_end import GATEWAY, GatewayProcess, lines_up


def write_audio_config(tmp_path: Path, broker: PrivateBroker, modem: SimulatedGsmModem) -> Path:
    prompt = tmp_path / "prompt.wav"
    write_wav(prompt, to_pcm(speech_like(2.5, seed=9)), "pcm")
    config = tmp_path / "edge112.toml"
    config.write_text(
        f'[gateway]\nid = "{GATEWAY}"\nregion = "64.74"\n'
        f'[mqtt]\nurl = "{broker.url}"\nreconnect_min_s = 0.1\n'
        f'[outbox]\npath = "{tmp_path / "state" / "outbox.db"}"\n'
        f'[audio]\nrecordings_dir = "{tmp_path / "recordings"}"\nghost_after_s = 2.0\n'
        f'silent_prompt = "{prompt}"\nsilent_prompt_after_s = 1.0\nsilent_listen_s = 3.0\n'
        f'[[modems]]\nname = "gsm0"\nport = "{modem.link}"\naudio_port = "{modem.audio_link}"\n'
        "answer_after_rings = 1\ncaller_id_grace_ms = 200\n"
    )
    return config


def test_speaking_caller_silent_caller_and_a_caller_who_presses_55(
    tmp_path: Path, broker: PrivateBroker, monitor: FeedMonitor
) -> None:
    modem = SimulatedGsmModem(
        tmp_path / "gsm0", model="quectel_ec25", seed=3, audio_link=tmp_path / "gsm0-audio"
    )
    gateway = GatewayProcess(write_audio_config(tmp_path, broker, modem)).start()
    try:
        assert monitor.wait_for(lambda m: lines_up(m) == 1, PROCESS_TIMEOUT_S), "modem set up"
        calls = [
            SimulatedCall(  # speaks, then presses 1 1 2
                number="+6281111111111",
                ring_interval_s=0.3,
                talk_s=3.0,
                audio=(AudioSegment.speech(1.5), AudioSegment.dtmf("112")),
            ),
            SimulatedCall(  # says nothing, ignores the prompt: ghost
                number="+6282222222222",
                ring_interval_s=0.3,
                talk_s=3.5,
                audio=(AudioSegment.silence(3.5),),
            ),
            SimulatedCall(  # says nothing, hears the prompt, presses 55
                number="+6283333333333",
                ring_interval_s=0.3,
                talk_s=4.0,
                audio=(AudioSegment.silence(4.0),),
                respond_to_prompt="55",
            ),
        ]
        for spec in calls:
            assert modem.place_call(spec).wait(PROCESS_TIMEOUT_S)
        assert monitor.wait_for(
            lambda m: len(m.events_of(GATEWAY, "call.audio_summary")) == 3, PROCESS_TIMEOUT_S
        ), "one summary per answered call"
        gateway.terminate()
    finally:
        gateway.stop_if_running()
        modem.close()
    events = monitor.events_of(GATEWAY)
    for event in events:
        validate_event(event)
    offered = {
        e["data"]["call_id"]: e["data"]["number"]
        for e in monitor.events_of(GATEWAY, "call.offered")
    }
    summaries = {
        offered[e["data"]["call_id"]]: e for e in monitor.events_of(GATEWAY, "call.audio_summary")
    }
    speaking = summaries["+6281111111111"]["data"]
    assert speaking["digits"] == "112" and not speaking["silent"]
    assert speaking["category"] is None
    dtmf = [
        e["data"]["digit"]
        for e in monitor.events_of(GATEWAY, "call.dtmf")
        if e["data"]["call_id"] == speaking["call_id"]
    ]
    assert dtmf == ["1", "1", "2"]
    ghost = summaries["+6282222222222"]["data"]
    assert ghost["silent"] and ghost["category"] == "ghost"
    assert ghost["silent_call"] == {"prompted": True, "pressed_55": False}
    pressed = summaries["+6283333333333"]["data"]
    assert pressed["silent_call"] == {"prompted": True, "pressed_55": True}
    assert pressed["category"] is None
    for summary in summaries.values():  # after call.ended of the same call
        ended = [
            e
            for e in events
            if e["type"] == "call.ended" and e["data"]["call_id"] == summary["data"]["call_id"]
        ]
        assert ended and ended[0]["seq"] < summary["seq"]
        recording = summary["data"]["recording"]
        path = Path(recording["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == recording["sha256"]
        assert read_wav(path).duration_ms >= 2000
