"""Outbound registration over TCP registers again when its connection comes back.

A registrar (a small TCP SIP server in this test, on 127.0.0.40) grants a long
binding and then drops the connection, as a restarted or load-balanced
registrar does. The binding may have ridden that connection (RFC 5626 §4.4.1):
when the SBC next connects to the trunk (here for its OPTIONS probe, every
second), it must REGISTER again on the new connection instead of waiting for
the hour-long refresh.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from harness import SbcProcess, TrunkDef, free_port

pytestmark = pytest.mark.integration

REGISTRAR_IP = "127.0.0.40"
GRANT_S = 3600
WAIT_S = 15.0


@dataclass
class Received:
    connection: int  # which accepted connection it came on (1, 2, ...)
    method: str
    cseq: int


@dataclass
class TcpRegistrar:
    """Answers 200 to every request; drops the first connection after the first REGISTER."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = socket.create_server((self.host, self.port))
        self.server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        accepted = 0
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted += 1
            threading.Thread(target=self._talk, args=(conn, accepted), daemon=True).start()

    def _talk(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(0.2)
        buffer = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while (message := _one_message(buffer)) is not None:
                    head, buffer = message
                    request = self._answer(conn, head, number)
                    if request is not None and number == 1 and request.method == "REGISTER":
                        return  # granted, then the connection is gone

    def _answer(self, conn: socket.socket, head: str, number: int) -> Received | None:
        lines = head.split("\r\n")
        if not lines[0] or lines[0].startswith("SIP/2.0"):
            return None
        method = lines[0].split(" ", 1)[0]
        copied = [
            line
            for line in lines[1:]
            if line.split(":", 1)[0].strip().lower() in {"via", "from", "to", "call-id", "cseq"}
        ]
        cseq = next(int(line.split()[1]) for line in copied if line.lower().startswith("cseq"))
        extra = []
        if method == "REGISTER":
            contact = next(
                line for line in lines[1:] if line.split(":", 1)[0].strip().lower() == "contact"
            )
            extra = [f"{contact};expires={GRANT_S}" if "expires" not in contact else contact]
        response = "\r\n".join(["SIP/2.0 200 OK", *copied, *extra, "Content-Length: 0", "", ""])
        conn.sendall(response.encode())
        received = Received(number, method, cseq)
        self.received.append(received)
        return received

    def registers(self) -> list[Received]:
        return [r for r in self.received if r.method == "REGISTER"]

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(timeout=2)


def _one_message(buffer: bytes) -> tuple[str, bytes] | None:
    """The first whole message's head (no body: REGISTER and OPTIONS carry none)."""
    while buffer.startswith(b"\r\n"):
        buffer = buffer[2:]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode(errors="replace")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in {"content-length", "l"}:
            length = int(value.strip() or 0)
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return head, buffer[total:]


@pytest.fixture
def registrar() -> Iterator[TcpRegistrar]:
    server = TcpRegistrar(REGISTRAR_IP, free_port(REGISTRAR_IP, udp=False))
    try:
        yield server
    finally:
        server.close()


def test_registration_is_renewed_when_the_connection_comes_back(
    tmp_path_factory: pytest.TempPathFactory, registrar: TcpRegistrar
) -> None:
    trunk = TrunkDef(
        "tcp-registrar",
        "external",
        REGISTRAR_IP,
        port=registrar.port,
        transport="tcp",
        extra="options_interval_s: 1, register: {aor_user: '+15550000050', expires_s: 3600}",
    )
    sbc = SbcProcess(tmp_path_factory.mktemp("sbc-reconnect"), extra_trunks=[trunk])
    sbc.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and len(registrar.registers()) < 2:
            time.sleep(0.1)
    finally:
        sbc.stop()
    registers = registrar.registers()
    assert len(registers) >= 2, registrar.received
    first, second = registers[0], registers[1]
    assert first.connection == 1
    assert second.connection == 2, registrar.received  # on the new connection
    assert second.cseq == first.cseq + 1  # the same binding renewed (RFC 3261 §10.2.4)
    # Long before the hour-long refresh: because the flow came back, nothing else.
    assert len(registers) == 2, registrar.received
