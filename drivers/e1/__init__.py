"""E1 / ISDN PRI: a passive tap on a primary rate trunk.

The layers, bottom up; apart from the sources, each module is pure (bytes
in, typed values out, no I/O, no clock of its own)::

    two receive streams by URL --sources, transports--> octets with line time
    raw E1 --framing (cython_ext.e1_framing)--> aligned frames + line state (LOS, AIS, LOF,
                                                RAI, CRC-4 errors, slips)
    frames --cython_ext.e1 demux--> TS16 octets
    TS16 octets --cython_ext.hdlc--> LAPD frames --lapd, lapd_monitor--> Q.931 payloads
                --q931--> messages: call reference, message type, information elements

- ``sources`` / ``transports``: a span's two receive streams (network to user,
  user to network) from files (replayed at line rate), TCP, unix sockets,
  FIFOs or any pyserial URL; ``generator``: E1 streams and line faults, for
  the simulator and the tests.
- ``framing``: FAS/NFAS alignment from any bit, CRC-4 multiframe, line state.
- ``calls`` (with ``call_records``): the PRI call tracker, Q.931 messages to
  the gateway's ``call.*`` events.
- ``family``, ``span``, ``audio``: the ``[[spans]]`` line family, its driver
  (all the layers above, both directions merged in line time) and B-channel
  audio into the call audio pipeline.
- ``pcap``, ``decode``, ``cli``: the ``edge112 e1`` tools.

- ``lapd``: Q.921 frames (I, S, U), TEI management, the C/R direction rules.
- ``lapd_monitor``: the passive link tracker (link states, N(S) with wrap,
  retransmissions delivered once, silence past T203).
- ``q931``: the message decoder and encoder with codeset shifts, ETSI
  EuroISDN by default; ``q931_ie`` the information elements, ``q931_codes``
  the code points and ``Q931Error``.
"""
