"""Call audio: WAV files, call recordings, and what the audio of a call tells.

Everything here speaks the gateway's one internal audio format: signed
16-bit little-endian PCM, one channel, 8,000 Hz (A-law on E1 and GSM audio
ports decode to it). The hot paths are in ``cython_ext`` (G.711, DTMF,
voice activity, resampling); this package puts them to work:

* ``wav.py``: read any common RIFF/WAVE file (PCM 8/16/24/32-bit, float,
  A-law, mu-law, extensible, any rate, any channel count) as 8 kHz mono PCM;
  write complete files;
* ``recorder.py``: a call's recording written as the call goes, valid on
  disk at every moment, and the store that names, caps and ages recordings;
* ``analyze.py``: duration, speech, first speech, silence, DTMF digits of a
  recording or of any PCM;
* ``cli.py``: ``edge112 audio analyze|dtmf|convert``;
* ``contract.py``: what a line driver hands over for each answered call
  (``CallAudio``, ``AudioSink``, ``AudioSinkFactory``);
* ``pipeline.py``: the live path from a call's audio port to these.
"""
