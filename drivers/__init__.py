"""Hardware drivers: bytes from modems and spans in, typed call signals and call audio out.

The gateway's plug-ins: they import the contract from ``gateway`` (events,
``gateway.calls``, ``gateway.lines``, ``gateway.audio.contract``) and the
gateway finds each family through ``gateway.families``, never by import.
``drivers.at_channel`` is the serial AT byte pipe, ``drivers.audio_port``
the serial PCM reader, ``drivers.gsm`` the GSM family (settings, modem
driver, dialects) built on both, ``drivers.simulated`` the virtual hardware
that ships with the product (a simulated modem, and its caller's voice, on
pseudo-terminals).
"""
