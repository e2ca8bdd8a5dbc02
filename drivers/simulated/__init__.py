"""Virtual hardware shipped with the product: a GSM modem, and a caller who speaks, on PTYs.

``drivers.simulated.gsm_modem`` is the modem (with ``gsm_models``,
``gsm_calls``, ``gsm_commands``, ``gsm_sms``, ``sms_deliver`` and
``gsm_power``: vendor shapes, call scripts, AT command table, SIM storage,
network-made PDUs, power key and supply for the recovery ladder),
``drivers.simulated.voice_port`` its audio port, ``drivers.simulated.caller_audio`` what
the caller says and
hears (built from ``drivers.simulated.audio_signals``),
``drivers.simulated.scenario`` scripts calls and faults for it
(``scenario_faults``: resets, hangs, replugs, registration, SMS),
``drivers.simulated.cli`` runs it as ``edge112 sim gsm``. Tests, demos and
benchmarks drive the real gateway code against it; nothing in the gateway
knows it is not hardware.
"""
