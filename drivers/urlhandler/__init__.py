"""pyserial URL handlers shipped with edge112 (``protocol_<scheme>.Serial``, pyserial's convention).

``drivers.at_channel`` appends this package to ``serial.protocol_handler_packages``
at import, so ``serial.serial_for_url("record://...")`` finds ``protocol_record``.
"""
