"""Virtual hardware shipped with the product: a GSM modem on a pseudo-terminal.

``drivers.simulated.gsm_modem`` is the modem, ``drivers.simulated.scenario``
scripts calls and faults for it, ``drivers.simulated.cli`` runs it as
``edge112 sim gsm``. Tests, demos and benchmarks drive the real gateway code
against it; nothing in the gateway knows it is not hardware.
"""
