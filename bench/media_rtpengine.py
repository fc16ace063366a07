"""rtpengine for the media benchmark: install, start userspace-only, drive over ng.

The ng control protocol is a UDP datagram ``<cookie> <bencoded dict>``; the
reply carries the same cookie. Only what the benchmark needs is here: a tiny
bencode codec, ``ping`` / ``offer`` / ``answer`` / ``delete``, and the
daemon's lifecycle (started by us, stopped by PID: SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

Bencodable = int | str | bytes | list["Bencodable"] | dict[str, "Bencodable"]
Decoded = int | bytes | list["Decoded"] | dict[str, "Decoded"]

INSTALL_TIMEOUT = 240.0
_INSTALL_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


# -- bencode --------------------------------------------------------------------


def bencode(value: Bencodable) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((key.encode(), item) for key, item in value.items())
        return b"d" + b"".join(bencode(key) + bencode(item) for key, item in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Decoded:
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after offset {end}")
    return value


def _decode(data: bytes, pos: int) -> tuple[Decoded, int]:
    lead = data[pos : pos + 1]
    if lead == b"i":
        end = data.index(b"e", pos)
        return int(data[pos + 1 : end]), end + 1
    if lead == b"l":
        items: list[Decoded] = []
        pos += 1
        while data[pos : pos + 1] != b"e":
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + 1
    if lead == b"d":
        mapping: dict[str, Decoded] = {}
        pos += 1
        while data[pos : pos + 1] != b"e":
            key, pos = _decode(data, pos)
            if not isinstance(key, bytes):
                raise ValueError("bencode dict key is not a string")
            mapping[key.decode()], pos = _decode(data, pos)
        return mapping, pos + 1
    if lead.isdigit():
        colon = data.index(b":", pos)
        start = colon + 1
        end = start + int(data[pos:colon])
        if end > len(data):
            raise ValueError("truncated bencode string")
        return data[start:end], end
    raise ValueError(f"bad bencode at offset {pos}: {lead!r}")


# -- ng control -------------------------------------------------------------------


class NgError(RuntimeError):
    pass


class NgClient:
    """Blocking ng client over UDP (retries a lost request with the same cookie)."""

    def __init__(self, address: tuple[str, int], timeout: float = 0.5, retries: int = 4) -> None:
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self._cookies = itertools.count(1)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))

    def request(self, command: dict[str, Bencodable]) -> dict[str, Decoded]:
        cookie = b"%d_%d" % (os.getpid(), next(self._cookies))
        datagram = cookie + b" " + bencode(command)
        self._sock.settimeout(self.timeout)
        for _ in range(self.retries):
            self._sock.sendto(datagram, self.address)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                try:
                    reply = self._sock.recv(65536)
                except TimeoutError:
                    break
                except ConnectionRefusedError:  # ICMP port unreachable: not up yet
                    time.sleep(0.05)
                    break
                head, _, body = reply.partition(b" ")
                if head != cookie:
                    continue  # a late answer to an earlier retry
                decoded = bdecode(body)
                if not isinstance(decoded, dict):
                    raise NgError(f"ng reply is not a dict: {decoded!r}")
                result = decoded.get("result")
                if result not in (b"ok", b"pong"):
                    reason = decoded.get("error-reason", result)
                    raise NgError(f"ng {command.get('command')!s}: {reason!r}")
                return decoded
        raise NgError(f"ng {command.get('command')!s}: no reply from {self.address}")

    def close(self) -> None:
        self._sock.close()


_MEDIA = re.compile(rb"^m=audio (\d+) ", re.MULTILINE)
_CONNECTION = re.compile(rb"^c=IN IP4 (\S+)", re.MULTILINE)


def sdp(host: str, port: int, session: int) -> str:
    return "\r\n".join(
        [
            "v=0",
            f"o=- {session} 1 IN IP4 {host}",
            "s=bench",
            f"c=IN IP4 {host}",
            "t=0 0",
            f"m=audio {port} RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=ptime:20",
            "a=sendrecv",
            "",
        ]
    )


def media_address(reply: dict[str, Decoded]) -> tuple[str, int]:
    """The (host, port) an ng reply's SDP tells the other party to send to."""
    body = reply.get("sdp")
    if not isinstance(body, bytes):
        raise NgError("ng reply without SDP")
    media = _MEDIA.search(body)
    connection = _CONNECTION.search(body)
    if media is None or connection is None:
        raise NgError(f"ng reply SDP without audio address: {body!r}")
    return connection.group(1).decode(), int(media.group(1))


# -- the daemon -------------------------------------------------------------------


def ensure_installed() -> str:
    """Path of the rtpengine binary, installing Debian ``rtpengine-daemon`` if missing.

    Raises :class:`RuntimeError` with a short reason when that is impossible.
    """
    found = shutil.which("rtpengine")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise RuntimeError("no-apt-get")
    if os.geteuid() != 0:
        raise RuntimeError("not-root")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "rtpengine-daemon"]
    detail = ""
    for attempt in range(2):
        if attempt:  # the package lists may be missing or stale
            _run(["apt-get", "update"])
        code, detail = _run(install)
        if code == 0 and (found := shutil.which("rtpengine")):
            return found
    raise RuntimeError(f"apt-get-failed:{detail}")


def _run(command: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(
            command,
            env=_INSTALL_ENV,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, type(exc).__name__
    lines = (done.stderr or done.stdout).strip().splitlines()
    last = lines[-1] if lines else f"exit-{done.returncode}"
    return done.returncode, re.sub(r"\s+", "_", last)[:80]


class Rtpengine:
    """One userspace rtpengine (``table = -1``) on loopback, owned by this process."""

    def __init__(
        self,
        binary: str,
        *,
        interface: str = "127.0.0.1",
        ng_port: int,
        port_min: int,
        port_max: int,
    ) -> None:
        self.binary = binary
        self.interface = interface
        self.ng = (interface, ng_port)
        self.port_min = port_min
        self.port_max = port_max
        self._dir = Path(tempfile.mkdtemp(prefix="bench-rtpengine-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.client: NgClient | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def log_path(self) -> Path:
        return self._dir / "rtpengine.log"

    def start(self, timeout: float = 15.0) -> str:
        """Start the daemon and wait until it answers an ng ``ping``; returns its version."""
        config = self._dir / "rtpengine.conf"
        config.write_text(
            "\n".join(
                [
                    "[rtpengine]",
                    "table = -1",
                    f"interface = {self.interface}",
                    f"listen-ng = {self.ng[0]}:{self.ng[1]}",
                    f"port-min = {self.port_min}",
                    f"port-max = {self.port_max}",
                    "timeout = 600",
                    "silent-timeout = 600",
                    "delete-delay = 0",
                    "foreground = true",
                    "log-stderr = true",
                    "log-level = 4",
                    "",
                ]
            )
        )
        probe = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        )
        version = (probe.stdout + probe.stderr).strip()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config-file={config}", "--config-section=rtpengine"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = NgClient(self.ng, timeout=0.2, retries=1)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited-{self.process.returncode}:{self._log_tail()}")
            try:
                self.client.request({"command": "ping"})
            except NgError:
                if time.monotonic() > deadline:
                    raise RuntimeError("no-ng-pong") from None
                continue
            break
        self.client.retries = 4
        return version.rsplit(" ", 1)[-1] or "unknown"

    def call(
        self, call_id: str, a: tuple[str, int], b: tuple[str, int]
    ) -> tuple[tuple[str, int], tuple[str, int]]:
        """Offer from ``a``, answer from ``b``; returns where a and b must send."""
        assert self.client is not None
        offer = self.client.request(
            {
                "command": "offer",
                "call-id": call_id,
                "from-tag": "a",
                "sdp": sdp(a[0], a[1], 1),
            }
        )
        answer = self.client.request(
            {
                "command": "answer",
                "call-id": call_id,
                "from-tag": "a",
                "to-tag": "b",
                "sdp": sdp(b[0], b[1], 2),
            }
        )
        return media_address(answer), media_address(offer)

    def delete(self, call_id: str) -> None:
        assert self.client is not None
        self.client.request({"command": "delete", "call-id": call_id, "from-tag": "a"})

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM by PID, SIGKILL after ``grace`` seconds."""
        if self.client is not None:
            self.client.close()
            self.client = None
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no-log"
        return re.sub(r"\s+", "_", lines[-1])[:80] if lines else "no-log"
