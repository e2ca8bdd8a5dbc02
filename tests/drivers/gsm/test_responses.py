"""27.007 line parsers, vendor dialects and number masking, fed literal modem lines."""

from __future__ import annotations

import pytest

from drivers.gsm.dialects import (
    CallEnd,
    CallListed,
    GenericDialect,
    HuaweiDialect,
    MessageStored,
    ModemIdentity,
    QuectelDialect,
    RegistrationChanged,
    ResetBanner,
    Ring,
    SimcomDialect,
    StorageFull,
    caller_from_record,
    pick_dialect,
)
from drivers.gsm.responses import (
    CallerId,
    CallRecord,
    StoredMessageHeader,
    incoming_voice_calls,
    parse_clcc,
    parse_clip,
    parse_csq_dbm,
    parse_message_header,
    parse_registration,
    parse_storage_usage,
)
from gateway.events import EndCause, Presentation
from gateway.privacy import mask_digit_runs, mask_number


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('+CLIP: "+6281234567890",145,"",0,"",0', CallerId("+6281234567890", Presentation.ALLOWED)),
        ('+CLIP: "6281234567890",145,,,,0', CallerId("+6281234567890", Presentation.ALLOWED)),
        ('+CLIP: "081234567890",129,"",0,"",0', CallerId("081234567890", Presentation.ALLOWED)),
        ('+CLIP: "",128,,,,1', CallerId(None, Presentation.RESTRICTED)),
        ('+CLIP: "",128,"",0,"",2', CallerId(None, Presentation.UNAVAILABLE)),
        ('+CLIP: "",128,"",0,"",0', CallerId(None, Presentation.UNAVAILABLE)),
        ('+CLIP: "081234567890",129', CallerId("081234567890", Presentation.ALLOWED)),
        ('+CLIP: "",128', CallerId(None, Presentation.UNAVAILABLE)),
    ],
)
def test_parse_clip_shapes(line, expected):
    assert parse_clip(line) == expected


@pytest.mark.parametrize("line", ["+CLIP:", "+CLIP: ", "+CLCC: 1", "RING"])
def test_malformed_lines_raise_value_error(line):
    parser = parse_clcc if line.startswith("+CLCC") else parse_clip
    with pytest.raises(ValueError):
        parser(line)


def test_parse_clcc_voice_record():
    record = parse_clcc('+CLCC: 2,1,4,0,0,"6281234567890",145')

    assert (record.index, record.direction, record.status, record.mode) == (2, 1, 4, 0)
    assert record.number == "+6281234567890"
    assert record.is_voice


def test_only_incoming_voice_records_count_as_calls():
    lines = [
        '+CLCC: 1,0,0,1,0,"",128',  # EC25 data session
        '+CLCC: 2,1,4,1,0,"",128',  # incoming data call
        '+CLCC: 3,0,2,0,0,"112",129',  # outgoing voice
        '+CLCC: 4,1,0,0,0,"+6281234567890",145',  # the incoming voice call
        "+CLCC: garbage",
    ]

    assert [record.index for record in incoming_voice_calls(lines)] == [4]


@pytest.mark.parametrize(
    ("line", "dbm"), [("+CSQ: 0,99", -113), ("+CSQ: 20,99", -73), ("+CSQ: 31,0", -51)]
)
def test_parse_csq(line, dbm):
    assert parse_csq_dbm(line) == dbm


def test_csq_99_is_unknown():
    assert parse_csq_dbm("+CSQ: 99,99") is None


@pytest.mark.parametrize(
    ("line", "registered"),
    [("+CREG: 0,1", True), ("+CREG: 0,5", True), ('+CEREG: 2,2,"1A2B"', False)],
)
def test_parse_registration(line, registered):
    assert parse_registration(line) is registered


@pytest.mark.parametrize(
    ("manufacturer", "model", "dialect"),
    [
        ("Quectel", "EC25", QuectelDialect),
        ("SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", SimcomDialect),
        ("SIMCOM_Ltd", "SIMCOM_SIM800L", SimcomDialect),
        ("huawei", "E173", HuaweiDialect),
        ("WAVECOM MODEM", "MULTIBAND 900E 1800", GenericDialect),
    ],
)
def test_pick_dialect_by_identity(manufacturer, model, dialect):
    assert type(pick_dialect(ModemIdentity(manufacturer, model, "0"))) is dialect


def test_vendor_dialects_inherit_the_3gpp_tables():
    assert QuectelDialect.setup_commands == GenericDialect.setup_commands
    assert "AT+CEREG?" in QuectelDialect.registration_queries
    assert HuaweiDialect().parse_urc("NO CARRIER") == CallEnd(EndCause.REMOTE_HANGUP)


@pytest.mark.parametrize(
    ("dialect", "line", "signal"),
    [
        (GenericDialect(), "RING", Ring()),
        (GenericDialect(), "+CRING: VOICE", Ring()),
        (GenericDialect(), "+CRING: REL VOICE", Ring()),
        (GenericDialect(), "+CRING: ASYNC", None),
        (GenericDialect(), "BUSY", CallEnd(EndCause.BUSY)),
        (GenericDialect(), "VOICE CALL: END: 000041", None),
        (SimcomDialect(), "VOICE CALL: END: 000041", CallEnd(EndCause.REMOTE_HANGUP)),
        (
            SimcomDialect(),
            "MISSED_CALL: 11:08AM 081234567890",
            CallEnd(EndCause.REMOTE_HANGUP, "081234567890"),
        ),
        (SimcomDialect(), "MISSED_CALL: 11:08AM", CallEnd(EndCause.REMOTE_HANGUP)),
        (GenericDialect(), '+CRING: VOICE,"+6281234567890",145', Ring("+6281234567890")),
        (
            SimcomDialect(),
            '+CLCC: 1,1,4,0,0,"+6281234567890",145',
            CallListed(CallRecord(1, 1, 4, 0, "+6281234567890")),
        ),
        (
            QuectelDialect(),
            '+QIND: "ccinfo",2,1,4,0,0,"+6281234567890",145',
            CallListed(CallRecord(2, 1, 4, 0, "+6281234567890")),
        ),
        (
            QuectelDialect(),
            '+QIND: "ccinfo",1,0,0,1,0,"",128',  # the EC25 data session: mode 1
            CallListed(CallRecord(1, 0, 0, 1, None)),
        ),
        (GenericDialect(), '+QIND: "ccinfo",2,1,4,0,0,"+62812",145', None),
        (QuectelDialect(), "+QIND: SMS DONE", ResetBanner("+QIND: SMS DONE")),
        (QuectelDialect(), "+QIND: PB DONE", ResetBanner("+QIND: PB DONE")),
        (QuectelDialect(), "RDY", ResetBanner("RDY")),
        (SimcomDialect(), "Call Ready", ResetBanner("Call Ready")),
        (SimcomDialect(), "SMS Ready", ResetBanner("SMS Ready")),
        (GenericDialect(), "+CFUN: 1", ResetBanner("+CFUN: 1")),
        (GenericDialect(), "+CPIN: READY", ResetBanner("+CPIN: READY")),
        (GenericDialect(), "Call Ready", None),
        (GenericDialect(), "+CREG: 1", RegistrationChanged("CREG", 1)),
        (GenericDialect(), '+CREG: 5,"1A2B","01C3D4E5",7', RegistrationChanged("CREG", 5)),
        (GenericDialect(), "+CEREG: 3", RegistrationChanged("CEREG", 3)),
        (GenericDialect(), '+CMTI: "SM",3', MessageStored("SM", 3)),
        (GenericDialect(), '+CMTI: "ME",12', MessageStored("ME", 12)),
        (GenericDialect(), '+CDSI: "SM",1', MessageStored("SM", 1, status_report=True)),
        (QuectelDialect(), '+CDSI: "SM",1', MessageStored("SR", 1, status_report=True)),
        (QuectelDialect(), '+QIND: "smsfull","SM"', StorageFull("SM")),
        (HuaweiDialect(), '^SMMEMFULL: "SM"', StorageFull("SM")),
        (SimcomDialect(), "VOICE CALL: BEGIN", None),
        (HuaweiDialect(), "^CEND:1,41,29,16", CallEnd(EndCause.REMOTE_HANGUP)),
        (HuaweiDialect(), "^CEND:1,0,29,17", CallEnd(EndCause.BUSY)),
        (HuaweiDialect(), "^CEND:1,0,29,19", CallEnd(EndCause.NO_ANSWER)),
        (HuaweiDialect(), "^CEND:1,0,104,41", CallEnd(EndCause.UNKNOWN)),
        (HuaweiDialect(), "^CEND:1,0", CallEnd(EndCause.REMOTE_HANGUP)),
        (HuaweiDialect(), "^RSSI:20", None),
    ],
)
def test_call_signals_by_dialect(dialect, line, signal):
    assert dialect.parse_urc(line) == signal


@pytest.mark.parametrize(
    "line",
    ["+CREG: x", "+CREG: 9", '+CMTI: "SM"', '+CMTI: "SM",x', '+QIND: "ccinfo"', "+CLCC: 1,1"],
)
def test_garbled_urcs_raise_value_error(line):
    with pytest.raises(ValueError):
        QuectelDialect().parse_urc(line)


def test_only_incoming_voice_records_give_a_caller():
    data = CallRecord(1, 1, 4, 1, "+6281234567890")
    outgoing = CallRecord(1, 0, 2, 0, "+6281234567890")
    withheld = CallRecord(1, 1, 4, 0, None)
    voice = CallRecord(2, 1, 4, 0, "+6281234567890")

    assert [caller_from_record(r) for r in (data, outgoing, withheld)] == [None] * 3
    assert caller_from_record(voice) == CallerId("+6281234567890", Presentation.ALLOWED)


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ('+CPMS: "SM",3,20,"SM",3,20,"SM",3,20', (3, 20)),
        ("+CPMS: 20,20,20,20,20,20", (20, 20)),
    ],
)
def test_storage_usage(line, usage):
    assert parse_storage_usage(line) == usage


def test_message_headers():
    assert parse_message_header("+CMGR: 0,,23") == StoredMessageHeader(None, 0, 23)
    assert parse_message_header('+CMGL: 4,1,"",40') == StoredMessageHeader(4, 1, 40)
    with pytest.raises(ValueError):
        parse_message_header("+CMGL: x,1,,40")


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+6281234567890", "+6281*******90"),
        ("081234567890", "0812******90"),
        ("112", "***"),
        ("", "-"),
        (None, "-"),
    ],
)
def test_mask_number_keeps_first_four_and_last_two_digits(number, masked):
    assert mask_number(number) == masked


def test_mask_digit_runs_masks_numbers_inside_text():
    text = 'MISSED_CALL: 11:08AM 6281234567890 and +CLIP: "+6281234567890",145,,,,0'

    assert mask_digit_runs(text) == (
        'MISSED_CALL: 11:08AM 6281*******90 and +CLIP: "+6281*******90",145,,,,0'
    )
