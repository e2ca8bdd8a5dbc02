"""E1 / ISDN PRI: a passive tap on a primary rate trunk.

The layers, bottom up; each module is pure (bytes in, typed values out, no
I/O, no clock of its own)::

    TS16 octets --cython_ext.hdlc--> LAPD frames --lapd, lapd_monitor--> Q.931 payloads
                --q931--> messages: call reference, message type, information elements

- ``lapd``: Q.921 frames (I, S, U), TEI management, the C/R direction rules.
- ``lapd_monitor``: the passive link tracker (link states, N(S) with wrap,
  retransmissions delivered once, silence past T203).
- ``q931``: the message decoder and encoder with codeset shifts, ETSI
  EuroISDN by default; ``q931_ie`` the information elements, ``q931_codes``
  the code points and ``Q931Error``.
"""
