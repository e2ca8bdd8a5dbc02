"""SMS on a GSM line: PDUs decoded, parts reassembled, AML parsed, the modem's store emptied.

Layers, bottom up: ``pdu`` (one stored PDU -> ``SmsDeliver`` or a named
``PduError``), ``concat`` (parts -> whole messages, by reference, in any
order, with a timeout for parts that never come), ``aml`` (an AML text ->
typed location), ``inbox`` (the driver's side: +CMTI and the messages
stored at start read with AT+CMGR, events emitted, each message deleted with
AT+CMGD only once its event is committed).
"""
