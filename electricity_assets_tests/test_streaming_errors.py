"""What a sensor tick says and prints when the broker is down or refuses the credentials.

Each tick runs in a fresh process, as in the sensor daemon, so librdkafka's own stderr is seen.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from electricity_assets.streaming.broker import free_port

TICK = """
import dagster as dg
from electricity_assets.resources import build_resources
from electricity_assets.sensors import kafka_stream_sensor
result = kafka_stream_sensor(dg.build_sensor_context(
    cursor=None, resources={"kafka": build_resources()["kafka"]}))
print(type(result).__name__, getattr(result, "skip_message", ""))
"""


def _tick(env: dict[str, str]) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", TICK], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    noise = [line for line in done.stderr.splitlines()
             if "rdkafka" in line or "librdkafka" in line]
    return done.stdout.strip(), noise


@pytest.mark.integration  # a sensor tick in a process of its own
def test_a_down_broker_skips_the_tick_with_at_most_one_line_of_librdkafka_noise() -> None:
    out, noise = _tick({"KAFKA_BROKER_ADDRESS": f"127.0.0.1:{free_port()}"})
    assert out.startswith("SkipReason cannot list topics") and "KAFKA_BROKER_ADDRESS" in out
    assert len(noise) <= 1, noise  # was ~100 lines for one 5 s tick


def test_a_sasl_failure_says_authentication_failed_in_the_tick(kafka_broker: str) -> None:
    out, noise = _tick({"KAFKA_BROKER_ADDRESS": kafka_broker,
                        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
                        "KAFKA_SASL_USERNAME": "ingest", "KAFKA_SASL_PASSWORD": "wrong-pw"})
    assert out.startswith(f"SkipReason authentication failed on {kafka_broker}: "), out
    assert "SASL SCRAM-SHA-256 mechanism handshake failed" in out
    assert "wrong-pw" not in out and not any("wrong-pw" in line for line in noise)
    assert len(noise) <= 1, noise



def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


@contextlib.contextmanager
def _tls_listener(key: Path, cert: Path) -> Iterator[str]:
    """A loopback TLS listener (no Kafka behind it): enough for a client's TLS handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate: what the test provokes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.integration  # a TLS listener on loopback
def test_a_tls_failure_says_authentication_failed_in_the_tick(tmp_path: Path) -> None:
    server_key, server_cert = _self_signed(tmp_path, "127.0.0.1")
    _, other_ca = _self_signed(tmp_path, "other-ca")  # a wrong KAFKA_SSL_CA_LOCATION
    with _tls_listener(server_key, server_cert) as address:
        out, noise = _tick({"KAFKA_BROKER_ADDRESS": address, "KAFKA_SECURITY_PROTOCOL": "SSL",
                            "KAFKA_SSL_CA_LOCATION": str(other_ca)})
    assert out.startswith(f"SkipReason authentication failed on {address}: "), out
    assert "SSL" in out and "KAFKA_SSL_CA_LOCATION" in out
    assert len(noise) <= 1, noise
