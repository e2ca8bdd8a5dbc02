"""The forwarder with credentials and TLS, against a real mosquitto configured for them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.broker import BrokerTls, PrivateBroker
from gateway.config import MqttSettings
from gateway.events import CallOffered, Presentation
from gateway.forwarder import Forwarder
from gateway.outbox import Outbox

GATEWAY, REGION = "bontang-01", "64.74"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=edge112 test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", f"/CN={GATEWAY}")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(d / "san.ext"),
            "-out",
            str(d / f"{name}.pem"),
        )
    return d


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.db", gateway_id=GATEWAY, region=REGION) as box:
        box.put(
            CallOffered(
                call_id="c1",
                line="gsm0",
                number="+6281200000001",
                presentation=Presentation.ALLOWED,
                ring_count=1,
            )
        )
        yield box


def drained(outbox: Outbox, settings: MqttSettings, timeout: float = 10.0) -> Forwarder:
    forwarder = Forwarder(outbox, settings, gateway_id=GATEWAY, region=REGION)
    forwarder.start()
    reader = outbox.reader()
    deadline = time.monotonic() + timeout
    while reader.stats().pending and time.monotonic() < deadline:
        time.sleep(0.05)
    reader.close()
    forwarder.stop()
    return forwarder


def test_username_and_password(outbox: Outbox, tmp_path: Path) -> None:
    with PrivateBroker(workdir=tmp_path / "b", users={GATEWAY: "s3cret"}) as broker:
        wrong = drained(
            outbox,
            MqttSettings(
                url=broker.url,
                username=GATEWAY,
                password="nope",
                reconnect_min_s=0.1,
                reconnect_max_s=0.2,
            ),
            1.5,
        )
        assert wrong.stats.connects == 0
        assert "refused the connection" in wrong.stats.last_error
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        right = drained(
            outbox, MqttSettings(url=broker.url, username=GATEWAY, password_file=str(secret))
        )
        assert right.stats.connects == 1 and right.stats.acknowledged == 1


def test_tls_with_a_client_certificate(outbox: Outbox, tmp_path: Path, certificates: Path) -> None:
    tls = BrokerTls(
        certificates / "ca.pem",
        certificates / "server.pem",
        certificates / "server.key",
        require_client_certificate=True,
    )
    with PrivateBroker(workdir=tmp_path / "b", tls=tls) as broker:
        assert broker.url.startswith("mqtts://")
        no_cert = drained(
            outbox,
            MqttSettings(
                url=broker.url,
                ca_file=str(certificates / "ca.pem"),
                reconnect_min_s=0.1,
                reconnect_max_s=0.2,
            ),
            1.5,
        )
        assert no_cert.stats.connects == 0
        with_cert = drained(
            outbox,
            MqttSettings(
                url=broker.url,
                ca_file=str(certificates / "ca.pem"),
                cert_file=str(certificates / "client.pem"),
                key_file=str(certificates / "client.key"),
            ),
        )
        assert with_cert.stats.connects == 1 and with_cert.stats.acknowledged == 1
