"""Run an ASGI app with uvicorn in a background thread, on loopback, optionally over TLS with a test CA."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme
import uvicorn

STARTUP_TIMEOUT_S = 10.0


@dataclass
class TestCA:
    """A throw-away certificate authority and one loopback server certificate it signed.

    `ca_file` is what clients trust (`SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`).
    """

    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    __test__ = False  # not a pytest test class, despite its name

    @classmethod
    def create(cls, directory: Path | None = None) -> "TestCA":
        directory = Path(directory or tempfile.mkdtemp(prefix="roombridge-ca-"))
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="RoomBridge simulator test CA")
        cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
        ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
        ca.cert_pem.write_to_path(str(ca_file))
        cert.private_key_pem.write_to_path(str(key_file))
        # The chain (leaf first, then the CA) so that clients can build the path.
        with open(cert_file, "wb") as out:
            for blob in cert.cert_chain_pems:
                out.write(blob.bytes())
        return cls(directory, ca_file, cert_file, key_file)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServerThread:
    """uvicorn serving `app` from a daemon thread; `start()` returns once the port accepts connections."""

    app: object
    host: str = "127.0.0.1"
    port: int = 0
    tls: TestCA | None = None
    _server: uvicorn.Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> "ServerThread":
        if not self.port:
            self.port = free_port(self.host)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Idle TLS keep-alive connections otherwise hold shutdown for uvicorn's full graceful wait.
            timeout_graceful_shutdown=1,
            ssl_certfile=str(self.tls.cert_file) if self.tls else None,
            ssl_keyfile=str(self.tls.key_file) if self.tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sim:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT_S)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
