"""GSM modem drivers: AT lines from a modem port in, call signals for a CallTracker out.

``drivers.gsm.family`` is what the gateway's registry loads (``[[modems]]``
settings and their validation, building drivers), ``drivers.gsm.responses``
parses the 27.007 lines, ``drivers.gsm.dialects`` holds what each vendor
adds, ``drivers.gsm.modem`` is the driver that owns a port and keeps the
modem set up (``gateway.lines`` reconnects it when it vanishes), and
``drivers.gsm.call_audio`` carries each answered call's audio to its sink.
"""
