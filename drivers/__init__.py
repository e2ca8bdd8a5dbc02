"""Hardware drivers: bytes from modems and spans in, typed call signals and call audio out.

``drivers.at_channel`` is the serial AT byte pipe, ``drivers.audio_port``
the call-audio contract (``CallAudio``, ``AudioSink``) and the serial PCM
reader, ``drivers.gsm`` the GSM modem drivers built on both,
``drivers.simulated`` the virtual hardware that ships with the product (a
simulated modem, and its caller's voice, on pseudo-terminals).
"""
