"""Garbled and impossible lines of every new kind (registration, SMS notices, call states,
storage full) never stop the line: each is logged, and calls and SMS go on."""

from __future__ import annotations

from drivers.simulated.gsm_modem import SimulatedCall, SimulatedGsmModem
from drivers.simulated.sms_deliver import encode_deliver
from gateway.events import CallAbandoned, CallOffered, LineStatus, SmsReceived
from tests.drivers.gsm.support import running_driver, wait_line_up

NUMBER = "+6281234567890"
GARBAGE = (
    b"\r\n+CREG: x\r\n"
    b'\r\n+CEREG: 9,"zz"\r\n'
    b'\r\n+CMTI: "SM"\r\n'
    b'\r\n+CMTI: "SM",17\r\n'  # an index that holds nothing
    b'\r\n+CMTI: "XX",1\r\n'  # a memory the modem does not have
    b'\r\n+QIND: "ccinfo",2,1\r\n'
    b'\r\n+QIND: "ccinfo",1,0,0,1,0,"",128\r\n'  # the data session: never a call
    b"\r\n+CLCC: 1,1\r\n"
    b'\r\n+CRING: VOICE,"\r\n'
    b'\r\n\xff\xfe+CDSI: "SM",x\r\n'
)


def test_garbled_urcs_leave_the_line_up_and_working(link, log, wait_until, caplog):
    with (
        SimulatedGsmModem(link, model="quectel_ec25", chunking="random", seed=9) as modem,
        running_driver(link, log, signal_interval_s=0.5) as driver,
    ):
        wait_line_up(log, wait_until)
        modem.inject(GARBAGE)
        modem.deliver_sms(encode_deliver(NUMBER, text="tetap jalan"))
        wait_until(lambda: log.of(SmsReceived))
        placed = modem.place_call(SimulatedCall(NUMBER, hangup_after_rings=1, ring_interval_s=0.3))
        assert placed.wait(5.0)
        wait_until(lambda: log.of(CallAbandoned))
        sessions = driver.health().sessions

    assert sessions == 1
    assert [s.state for s in log.of(LineStatus)] == ["up", "down"]  # down: the stop
    assert log.of(CallOffered)[0].number == NUMBER
    assert [sms.text for sms in log.of(SmsReceived)] == ["tetap jalan"]
    assert "unreadable URC" in caplog.text
