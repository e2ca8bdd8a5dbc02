"""Hardware drivers: bytes from modems and spans in, typed call signals out.

``drivers.at_channel`` is the serial AT byte pipe, ``drivers.gsm`` the GSM
modem drivers built on it, ``drivers.simulated`` the virtual hardware that
ships with the product (a simulated modem on a pseudo-terminal).
"""
