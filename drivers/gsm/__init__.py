"""GSM modem drivers: AT lines from a modem port in, call, SMS and line events out.

Layers, bottom up: ``drivers.at_channel`` (the port: framing, command/URC
separation), ``drivers.gsm.responses`` (27.007/27.005 line parsers),
``drivers.gsm.dialects`` (what each vendor adds: set-up, URC shapes, boot
banners, call-state lines), ``drivers.gsm.sms`` (PDUs, multipart
reassembly, AML, the inbox that deletes only what is committed),
``drivers.gsm.modem`` (the driver: one port, one session at a time, resets,
caller id from every source, liveness), ``drivers.gsm.recovery`` (the
ladder for a modem that stops answering) over ``drivers.gsm.power`` (the
``ModemPower`` protocol the board implements), ``drivers.gsm.binding``
(finding a modem by IMEI/ICCID among the serial ports), and
``drivers.gsm.call_audio`` (each answered call's audio to its sink).
``drivers.gsm.family`` is what the gateway's registry loads (``[[modems]]``
settings and their validation, building drivers).
"""
