"""Real-peer integration harness: SIPp runner, message-log parser, SBC process.

Everything here is bounded in time: every subprocess gets a deadline, SIPp is
always started with ``-timeout``/``-timeout_error`` and every process this
module starts is stopped by PID (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SIPP = shutil.which("sipp") or ("/usr/bin/sipp" if Path("/usr/bin/sipp").exists() else None)

# Loopback addresses of the test topology (see DESIGN.md, demo topology).
CARRIER_IP = "127.0.0.10"
PBX_IP = "127.0.0.20"
SBC_EXT_IP = "127.0.0.1"
SBC_INT_IP = "127.0.0.2"
STRANGER_IP = "127.0.0.99"


# --------------------------------------------------------------------------
# Free ports
# --------------------------------------------------------------------------


def free_port(ip: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port that is free for UDP and/or TCP on ``ip`` right now."""
    for _ in range(200):
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((ip, 0))
            port: int = s.getsockname()[1]
        if port < 10000:
            continue
        try:
            if udp:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((ip, port))
            if tcp:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((ip, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {ip}")


def free_ports(ip: str, count: int, *, step: int = 1) -> int:
    """First of ``count`` consecutive free UDP ports (``step`` apart) on ``ip``."""
    for _ in range(200):
        base = free_port(ip, tcp=False)
        socks: list[socket.socket] = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((ip, base + i * step))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError(f"no {count} free ports on {ip}")


#: Where :func:`free_media_range` looks: below the SBC's default media range
#: (20000-29999, which parallel SBCs share) and the kernel's ephemeral ports.
PRIVATE_MEDIA_PORTS = (10000, 19999)


def free_media_range(ip: str, pairs: int) -> tuple[int, int]:
    """An RTP range of ``pairs`` even/odd port pairs, all free for UDP on ``ip`` now."""
    low, high = PRIVATE_MEDIA_PORTS
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(low, high - 2 * pairs, 2)
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + 2 * pairs):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((ip, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return (start, start + 2 * pairs - 1)
    raise RuntimeError(f"no {pairs} free media port pairs on {ip}")


def _proc_net_listening(ip: str, port: int, proto: str) -> bool:
    """True when something is bound to ip:port (/proc/net/udp or tcp LISTEN)."""
    want_ip = "".join(f"{int(b):02X}" for b in reversed(ip.split(".")))
    want = f"{want_ip}:{port:04X}"
    wildcard = f"00000000:{port:04X}"
    try:
        lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        cols = line.split()
        if len(cols) < 4 or cols[1] not in (want, wildcard):
            continue
        if proto == "tcp" and cols[3] != "0A":  # LISTEN
            continue
        return True
    return False


def wait_bound(ip: str, port: int, transport: str, timeout: float = 5.0) -> bool:
    proto = "tcp" if transport.startswith("t") else "udp"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _proc_net_listening(ip, port, proto):
            return True
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------
# SIP messages and SIPp's -message_file format
# --------------------------------------------------------------------------

_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}


@dataclass
class SipMessage:
    """One SIP message as seen by a SIPp instance (sent or received)."""

    direction: str  # "sent" | "received"
    transport: str  # "UDP" | "TCP" | ...
    timestamp: str
    raw: str
    start_line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @classmethod
    def parse(cls, direction: str, transport: str, timestamp: str, raw: str) -> SipMessage:
        msg = cls(direction, transport, timestamp, raw)
        text = raw.lstrip("\r\n")
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        msg.start_line = lines[0].strip() if lines else ""
        msg.body = body.strip("\n")
        for line in lines[1:]:
            if not line.strip():
                continue
            if line[0] in " \t" and msg.headers:  # folded continuation
                name, value = msg.headers[-1]
                msg.headers[-1] = (name, value + " " + line.strip())
                continue
            name, sep, value = line.partition(":")
            if sep:
                msg.headers.append((name.strip(), value.strip()))
        return msg

    # -- start line ---------------------------------------------------------
    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/")

    @property
    def method(self) -> str | None:
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def request_uri(self) -> str | None:
        parts = self.start_line.split(" ")
        return parts[1] if self.is_request and len(parts) > 1 else None

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        parts = self.start_line.split(" ")
        try:
            return int(parts[1])
        except (IndexError, ValueError):
            return None

    # -- headers ------------------------------------------------------------
    def header_all(self, name: str) -> list[str]:
        key = name.lower()
        out: list[str] = []
        for hname, value in self.headers:
            h = hname.lower()
            if _COMPACT.get(h, h) == key:
                out.append(value)
        return out

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq_method(self) -> str | None:
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    @property
    def cseq_number(self) -> int | None:
        cseq = self.header("CSeq")
        try:
            return int(cseq.split()[0]) if cseq else None
        except ValueError:
            return None

    @staticmethod
    def _tag(value: str | None) -> str | None:
        if value is None:
            return None
        m = re.search(r";\s*tag=([^;>\s,]+)", value, re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def from_tag(self) -> str | None:
        return self._tag(self.header("From"))

    @property
    def to_tag(self) -> str | None:
        return self._tag(self.header("To"))

    @property
    def via_branch(self) -> str | None:
        via = self.header("Via")
        if via is None:
            return None
        m = re.search(r";\s*branch=([^;,\s]+)", via, re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def via_host(self) -> str | None:
        via = self.header("Via")
        if via is None:
            return None
        m = re.match(r"SIP\s*/\s*2\.0\s*/\s*\w+\s+([^;,\s]+)", via, re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def contact_uri(self) -> str | None:
        contact = self.header("Contact")
        if contact is None:
            return None
        m = re.search(r"<([^>]*)>", contact)
        return m.group(1) if m else contact.split(";", 1)[0].strip()

    def __str__(self) -> str:
        return f"{self.direction} {self.transport}: {self.start_line}"


_BLOCK_START = re.compile(r"^-{20,} (?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$")
_BLOCK_KIND = re.compile(
    r"^(?P<tr>UDP|TCP|TLS|SCTP|WS) message "
    r"(?:(?P<sent>sent) \(\d+ bytes\)|(?P<recv>received) \[\d+\] bytes)\s*:\s*$"
)


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse SIPp's ``-trace_msg -message_file`` output into messages, in order."""
    messages: list[SipMessage] = []
    blocks: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        m = _BLOCK_START.match(line.rstrip("\r"))
        if m:
            blocks.append((m.group("ts"), []))
        elif blocks:
            blocks[-1][1].append(line)
    for ts, lines in blocks:
        # skip leading blank lines, then the "UDP message sent ..." line
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        k = _BLOCK_KIND.match(lines[0].strip())
        if not k:
            continue  # other kinds of trace entries (e.g. socket events)
        direction = "sent" if k.group("sent") else "received"
        raw = "\n".join(lines[1:]).strip("\n") + "\n"
        if not raw.strip():
            continue
        messages.append(SipMessage.parse(direction, k.group("tr"), ts, raw))
    return messages


# --------------------------------------------------------------------------
# SIPp runner
# --------------------------------------------------------------------------


@dataclass
class SippResult:
    name: str
    returncode: int | None
    messages: list[SipMessage]
    stdout: str
    stderr: str
    errors: str
    workdir: Path
    cmd: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def sent(self) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "sent"]

    @property
    def received(self) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "received"]

    def requests(self, method: str, direction: str | None = None) -> list[SipMessage]:
        return [
            m
            for m in self.messages
            if m.method == method and (direction is None or m.direction == direction)
        ]

    def responses(
        self, cseq_method: str | None = None, direction: str | None = None
    ) -> list[SipMessage]:
        return [
            m
            for m in self.messages
            if not m.is_request
            and (cseq_method is None or m.cseq_method == cseq_method)
            and (direction is None or m.direction == direction)
        ]

    def statuses(self, cseq_method: str | None = None, direction: str = "received") -> list[int]:
        return [m.status for m in self.responses(cseq_method, direction) if m.status is not None]

    def counter(self, name: str) -> int | None:
        """Cumulative value of a counter of SIPp's final statistics screen."""
        value: int | None = None
        for line in self.stdout.splitlines():
            cols = [c.strip() for c in line.split("|")]
            if len(cols) == 3 and cols[0] == name:
                try:
                    value = int(cols[2].split()[0])
                except (IndexError, ValueError):
                    continue
        return value

    def describe(self) -> str:
        tail = "\n".join(self.stdout.splitlines()[-25:])
        msgs = "\n".join(f"  {m}" for m in self.messages[:60])
        return (
            f"--- sipp {self.name} rc={self.returncode}\n$ {' '.join(self.cmd)}\n"
            f"errors:\n{self.errors[-3000:]}\nstderr:\n{self.stderr[-2000:]}\n"
            f"stdout (tail):\n{tail}\nmessages:\n{msgs}\n"
        )


def scenario_path(name: str) -> Path:
    path = SCENARIOS / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.exists():
        raise FileNotFoundError(path)
    return path


class Sipp:
    """One SIPp process. Build it, ``start()``, then ``wait()`` / ``stop()``.

    ``scenario`` is a file name under scenarios/ (with or without .xml), an
    absolute path, or ``"sn:uac"`` / ``"sn:uas"`` for SIPp's built-ins.
    """

    def __init__(
        self,
        scenario: str,
        *,
        local_ip: str,
        local_port: int | None = None,
        remote: str | None = None,
        transport: str = "udp",
        calls: int = 1,
        rate: float | None = None,
        rate_period_ms: int | None = None,
        limit: int | None = None,
        duration_ms: int | None = None,
        timeout_s: float = 30.0,
        workdir: Path,
        name: str | None = None,
        keys: dict[str, str] | None = None,
        service: str | None = None,
        lost: int | None = None,
        default_behaviors: str | None = None,
        trace_stat: bool = False,
        trace_rtt: bool = False,
        stat_freq_s: int = 1,
        media_port: int | None = None,
        trace_msg: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        if SIPP is None:
            raise RuntimeError("sipp binary not found")
        self.name = name or scenario.replace("sn:", "").removesuffix(".xml")
        self.local_ip = local_ip
        self.local_port = local_port if local_port is not None else free_port(local_ip)
        self.transport = transport
        self.timeout_s = timeout_s
        self.workdir = workdir / f"{self.name}-{uuid.uuid4().hex[:6]}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.message_file = self.workdir / "messages.log"
        self.error_file = self.workdir / "errors.log"
        self.stat_file = self.workdir / "stat.csv"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

        cmd: list[str] = [SIPP]
        if scenario.startswith("sn:"):
            cmd += ["-sn", scenario[3:]]
        else:
            path = Path(scenario) if os.path.isabs(scenario) else scenario_path(scenario)
            cmd += ["-sf", str(path)]
        if remote:
            cmd.append(remote)
        tmode = {"udp": "u1", "tcp": "t1"}.get(transport, transport)
        cmd += ["-i", local_ip, "-p", str(self.local_port), "-t", tmode]
        if transport == "tcp":
            # SIPp fails every call on a socket the peer closes, even calls that
            # are only lingering in their final pause: keep them (TOOLS.md).
            cmd += ["-reconnect_close", "false"]
        cmd += ["-m", str(calls)]
        if rate is not None:
            cmd += ["-r", f"{rate:g}"]
        if rate_period_ms is not None:
            cmd += ["-rp", str(rate_period_ms)]
        if limit is not None:
            cmd += ["-l", str(limit)]
        if duration_ms is not None:
            cmd += ["-d", str(duration_ms)]
        if service is not None:
            cmd += ["-s", service]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        if lost is not None:
            cmd += ["-lost", str(lost)]
        if default_behaviors is not None:
            cmd += ["-default_behaviors", default_behaviors]
        # SIPp binds -mp and the three ports above it (audio and video RTP/RTCP): taken
        # below the kernel's ephemeral range, where no other process picks ports at random.
        self.media_port = media_port if media_port is not None else free_media_range(local_ip, 2)[0]
        cmd += ["-mp", str(self.media_port)]
        cmd += ["-cp", str(free_port("0.0.0.0", tcp=False))]
        if trace_msg:  # off for benchmarks: the message log costs real time
            cmd += ["-trace_msg", "-message_file", str(self.message_file)]
        cmd += ["-trace_err", "-error_file", str(self.error_file)]
        if trace_stat:
            cmd += ["-trace_stat", "-stf", str(self.stat_file), "-fd", str(stat_freq_s)]
        if trace_rtt:
            cmd += ["-trace_rtt", "-rtt_freq", "1"]
        cmd += ["-nostdin", "-timeout", f"{timeout_s:g}s", "-timeout_error"]
        cmd += list(extra)
        self.cmd = cmd

    @property
    def address(self) -> str:
        return f"{self.local_ip}:{self.local_port}"

    def start(self, *, wait_bind: bool = True) -> Sipp:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=(self.workdir / "stdout.txt").open("wb"),
            stderr=(self.workdir / "stderr.txt").open("wb"),
            start_new_session=True,
        )
        if wait_bind and not wait_bound(self.local_ip, self.local_port, self.transport, 5.0):
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(f"sipp {self.name} exited rc={rc}: {self._read('stderr.txt')}")
        return self

    def _read(self, name: str) -> str:
        try:
            return (self.workdir / name).read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to end (bounded: its own -timeout plus a margin)."""
        assert self.proc is not None, "not started"
        limit = timeout if timeout is not None else self.timeout_s + 10.0
        try:
            self.returncode = self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result()

    def stop(self, grace: float = 3.0) -> SippResult:
        """SIGTERM (twice, SIPp sometimes needs it), then SIGKILL; by PID only."""
        if self.proc is not None and self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=grace / 2)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        return self.result()

    def result(self) -> SippResult:
        try:
            text = self.message_file.read_text(errors="replace")
        except OSError:
            text = ""
        return SippResult(
            name=self.name,
            returncode=self.returncode,
            messages=parse_message_log(text),
            stdout=self._read("stdout.txt"),
            stderr=self._read("stderr.txt"),
            errors=self._read(self.error_file.name),
            workdir=self.workdir,
            cmd=self.cmd,
        )

    def rtt_files(self) -> list[Path]:
        return sorted(self.workdir.glob("*_rtt.csv"))

    def response_times_ms(self) -> list[float]:
        """Response times (rtd="true" marks, whole ms) from ``-trace_rtt`` files."""
        out: list[float] = []
        for path in self.rtt_files():
            for line in path.read_text(errors="replace").splitlines()[1:]:
                cols = line.split(";")
                if len(cols) >= 2:
                    with contextlib.suppress(ValueError):
                        out.append(float(cols[1]))
        return out

    def stats(self) -> list[dict[str, str]]:
        """Rows of the ``-trace_stat`` CSV (one per -fd period, then the final one)."""
        try:
            lines = self.stat_file.read_text(errors="replace").splitlines()
        except OSError:
            return []
        if not lines:
            return []
        names = lines[0].rstrip(";").split(";")
        return [dict(zip(names, ln.rstrip(";").split(";"), strict=False)) for ln in lines[1:]]


def run_pair(uas: Sipp, uac: Sipp, timeout: float | None = None) -> tuple[SippResult, SippResult]:
    """Start the UAS (wait until bound), then the UAC; wait for both to end."""
    uas.start()
    try:
        uac.start(wait_bind=False)
        uac_res = uac.wait(timeout)
        # A failed caller usually leaves the callee waiting: do not sit out its
        # whole -timeout, give it a few seconds to finish on its own.
        uas_limit = timeout if timeout is not None else uas.timeout_s + 10.0
        if not uac_res.ok:
            uas_limit = min(uas_limit, 3.0)
        uas.wait(uas_limit)
    finally:
        uac.stop()
        uas.stop()
    return uas.result(), uac.result()


def run_calls(
    callees: Sequence[Sipp],
    caller: Sipp,
    *,
    idle: Sequence[Sipp] = (),
    idle_grace: float = 0.5,
    timeout: float | None = None,
) -> tuple[list[SippResult], SippResult, list[SippResult]]:
    """Like :func:`run_pair` with several callees (failover, weighted groups).

    ``callees`` are expected to finish on their own; ``idle`` ones are
    expected to receive nothing: they are stopped ``idle_grace`` seconds
    after the caller ends (whatever the SBC sends them is sent before the
    caller gets its final answer, so a short grace is enough).
    """
    try:
        for sipp in (*callees, *idle):
            sipp.start()
        caller.start(wait_bind=False)
        caller_res = caller.wait(timeout)
        for callee in callees:
            limit = timeout if timeout is not None else callee.timeout_s + 10.0
            if not caller_res.ok:
                limit = min(limit, 3.0)
            callee.wait(limit)
        if idle:
            time.sleep(idle_grace)
    finally:
        caller.stop()
        for sipp in (*callees, *idle):
            sipp.stop()  # a no-op for those that ended or never started
    return [c.result() for c in callees], caller.result(), [i.result() for i in idle]


# --------------------------------------------------------------------------
# Raw SIP over sockets (readiness probes, malformed input)
# --------------------------------------------------------------------------


def options_request(
    target: str, src_ip: str, src_port: int, *, transport: str = "UDP", max_forwards: int = 70
) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    call_id = uuid.uuid4().hex
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {src_ip}:{src_port};branch={branch};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:probe@{src_ip}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{target}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"Contact: <sip:probe@{src_ip}:{src_port}>\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_exchange(
    src_ip: str, dst: tuple[str, int], data: bytes, timeout: float = 1.0, max_replies: int = 4
) -> list[bytes]:
    """Send one datagram from src_ip (ephemeral port); collect replies until quiet."""
    replies: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src_ip, 0))
        s.settimeout(timeout)
        s.sendto(data, dst)
        while len(replies) < max_replies:
            try:
                replies.append(s.recv(65535))
            except (TimeoutError, ConnectionRefusedError):
                break
            s.settimeout(0.3)
    return replies


def sip_status(data: bytes) -> int | None:
    m = re.match(rb"SIP/2\.0 (\d{3}) ", data)
    return int(m.group(1)) if m else None


def options_ping(
    src_ip: str, dst: tuple[str, int], timeout: float = 1.0, max_forwards: int = 70
) -> int | None:
    """Send an OPTIONS over UDP; return the first final status (or None)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src_ip, 0))
        s.settimeout(timeout)
        port = s.getsockname()[1]
        s.sendto(
            options_request(f"{dst[0]}:{dst[1]}", src_ip, port, max_forwards=max_forwards), dst
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            status = sip_status(data)
            if status is not None and status >= 200:
                return status
    return None


# --------------------------------------------------------------------------
# The SBC under test
# --------------------------------------------------------------------------


@dataclass
class SbcPorts:
    ext: int
    int_: int
    carrier: int
    pbx: int


@dataclass(frozen=True)
class TrunkDef:
    """A trunk added to the generated ``trunks.yaml`` (a second PBX or carrier).

    ``port=None`` picks a free port on ``address``; ``transport=None`` takes
    the SBC's. ``extra`` is more YAML flow-mapping items, verbatim (for
    example ``"options_interval_s: 1, pass_headers: [X-Tenant]"``).
    """

    name: str
    interface: str  # "external" | "internal"
    address: str
    port: int | None = None
    transport: str | None = None
    extra: str = ""

    def yaml(self) -> str:
        extra = f", {self.extra}" if self.extra else ""
        return (
            f"  - {{name: {self.name}, interface: {self.interface}, address: {self.address}, "
            f"port: {self.port}, transport: {self.transport}{extra}}}\n"
        )


@dataclass(frozen=True)
class TlsListener:
    """A ``tls:`` block for one of the SBC's interfaces (SIP over TLS, RFC 3261 §26).

    ``port=None`` picks a free TCP port on the interface's address. Mutual TLS
    (``require_client_cert``) needs ``cafile``, the CA client certificates
    must chain to.
    """

    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    require_client_cert: bool = False
    port: int | None = None

    def yaml(self) -> str:
        items = [f"port: {self.port}", f"certfile: {self.certfile}", f"keyfile: {self.keyfile}"]
        if self.cafile is not None:
            items.append(f"cafile: {self.cafile}")
        if self.require_client_cert:
            items.append("require_client_cert: true")
        return "{" + ", ".join(items) + "}"


#: Loop lag / kernel queueing delay before new INVITEs are shed (calls.overload_delay_ms).
#: The tests share two noisy cores with SIPp and each other: the production default
#: (100 ms) sheds calls of tests that are not about overload when the box is busy.
TEST_OVERLOAD_DELAY_MS = 1000


def _with_overload_delay(extra_sbc_yaml: str, delay_ms: int | None) -> str:
    """``extra_sbc_yaml`` with ``calls.overload_delay_ms`` set (None: left as given)."""
    if delay_ms is None or "overload_delay_ms" in extra_sbc_yaml:
        return extra_sbc_yaml
    if "calls: {" in extra_sbc_yaml:
        return extra_sbc_yaml.replace("calls: {", f"calls: {{overload_delay_ms: {delay_ms}, ", 1)
    return f"calls: {{overload_delay_ms: {delay_ms}}}\n" + extra_sbc_yaml


DEFAULT_ROUTES_YAML = (
    "routes:\n"
    "  - {name: carrier-to-pbx, from_trunk: carrier, to: [pbx]}\n"
    "  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}\n"
)

#: Events the policy watcher logs after each reload attempt (sbc/watch.py).
RELOAD_EVENTS = frozenset({"policy.reloaded", "policy.refused"})


class SbcProcess:
    """``python -m sbc run --policies DIR`` on free ports, with a readiness probe.

    By default the policy is the demo topology (carrier <-> pbx). A test can
    give its own ``routes_yaml``, ``extra_trunks`` (appended to the carrier
    and pbx trunks) and ``extra_files`` (policy file name -> text, written
    last, so they may replace a generated file). ``tls`` adds a TLS listener
    to an interface ("external" / "internal"), next to its UDP and TCP.
    ``media_pairs`` gives each interface a private media range of that many
    RTP/RTCP pairs (:func:`free_media_range`) instead of the default range,
    which SBCs running in parallel on these loopback addresses share.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        transport: str = "udp",
        t1_ms: int = 500,
        extra_sbc_yaml: str = "calls: {shutdown_grace_s: 2}\n",
        ports: SbcPorts | None = None,
        routes_yaml: str | None = None,
        extra_trunks: Sequence[TrunkDef] = (),
        extra_files: Mapping[str, str] | None = None,
        admin_token: str | None = None,
        admin_address: str = "127.0.0.1",
        tls: Mapping[str, TlsListener] | None = None,
        media_pairs: int | None = None,
        overload_delay_ms: int | None = TEST_OVERLOAD_DELAY_MS,
        cdr: bool = True,
        admin: bool = True,
    ) -> None:
        self.workdir = workdir
        self.admin_token = admin_token
        self.admin_address = admin_address
        self.cdr = cdr
        self.admin = admin
        self.transport = transport
        self.t1_ms = t1_ms
        self.policies = workdir / "policies"
        self.policies.mkdir(parents=True, exist_ok=True)
        self.ports = ports or SbcPorts(
            ext=free_port(SBC_EXT_IP),
            int_=free_port(SBC_INT_IP),
            carrier=free_port(CARRIER_IP),
            pbx=free_port(PBX_IP),
        )
        self.extra_sbc_yaml = _with_overload_delay(extra_sbc_yaml, overload_delay_ms)
        self.routes_yaml = routes_yaml if routes_yaml is not None else DEFAULT_ROUTES_YAML
        self.extra_trunks = [
            replace(
                t,
                port=t.port if t.port is not None else free_port(t.address),
                transport=t.transport or transport,
            )
            for t in extra_trunks
        ]
        self.extra_files = dict(extra_files or {})
        interface_ips = {"external": SBC_EXT_IP, "internal": SBC_INT_IP}
        self.tls = {
            name: replace(
                listener,
                port=listener.port or free_port(interface_ips[name], udp=False),
            )
            for name, listener in (tls or {}).items()
        }
        self.media_ports = (
            {name: free_media_range(ip, media_pairs) for name, ip in interface_ips.items()}
            if media_pairs is not None
            else {}
        )
        self.admin_port = free_port("127.0.0.1", udp=False)
        self.cdr_path = workdir / "cdr.sqlite"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = workdir / "sbc.stdout"
        self.stderr_path = workdir / "sbc.stderr"
        self.write_policies()

    def _token_file(self) -> str:
        """The admin token goes into a file only its owner reads."""
        if self.admin_token is None:
            return ""
        path = self.workdir / "admin.token"
        path.write_text(self.admin_token + "\n")
        path.chmod(0o600)
        return f", token_file: {path}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # -- addresses ------------------------------------------------------------
    @property
    def ext(self) -> tuple[str, int]:
        return (SBC_EXT_IP, self.ports.ext)

    @property
    def int_(self) -> tuple[str, int]:
        return (SBC_INT_IP, self.ports.int_)

    @property
    def ext_uri(self) -> str:
        return f"{SBC_EXT_IP}:{self.ports.ext}"

    @property
    def int_uri(self) -> str:
        return f"{SBC_INT_IP}:{self.ports.int_}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def tls_address(self, interface: str) -> tuple[str, int]:
        """Where ``interface`` ("external" / "internal") listens for SIP over TLS."""
        listener = self.tls[interface]
        assert listener.port is not None  # resolved in __init__
        return (SBC_EXT_IP if interface == "external" else SBC_INT_IP, listener.port)

    def trunk(self, name: str) -> tuple[str, int]:
        """Address and port of a trunk (the built-in carrier/pbx or an extra one)."""
        if name == "carrier":
            return (CARRIER_IP, self.ports.carrier)
        if name == "pbx":
            return (PBX_IP, self.ports.pbx)
        for t in self.extra_trunks:
            if t.name == name:
                assert t.port is not None  # resolved in __init__
                return (t.address, t.port)
        raise KeyError(name)

    def write_policies(self) -> None:
        p = self.ports
        tr = self.transport
        (self.policies / "interfaces.yaml").write_text(
            "interfaces:\n"
            f"  - {{name: external, address: {SBC_EXT_IP}, port: {p.ext}, "
            f"{self._transports_yaml('external')}, media_address: {SBC_EXT_IP}}}\n"
            f"  - {{name: internal, address: {SBC_INT_IP}, port: {p.int_}, "
            f"{self._transports_yaml('internal')}, media_address: {SBC_INT_IP}}}\n"
        )
        (self.policies / "trunks.yaml").write_text(
            "trunks:\n"
            f"  - {{name: carrier, interface: external, address: {CARRIER_IP}, "
            f"port: {p.carrier}, transport: {tr}}}\n"
            f"  - {{name: pbx, interface: internal, address: {PBX_IP}, "
            f"port: {p.pbx}, transport: {tr}}}\n" + "".join(t.yaml() for t in self.extra_trunks)
        )
        (self.policies / "routes.yaml").write_text(self.routes_yaml)
        (self.policies / "sbc.yaml").write_text(
            f"sip: {{t1_ms: {self.t1_ms}}}\n"
            f"admin: {{enabled: {str(self.admin).lower()}, address: {self.admin_address},"
            f" port: {self.admin_port}"
            f"{self._token_file()}}}\n"
            f"cdr: {{enabled: {str(self.cdr).lower()}, path: {self.cdr_path}}}\n"
            + self.extra_sbc_yaml
        )
        for name, text in self.extra_files.items():
            (self.policies / name).write_text(text)

    def _transports_yaml(self, interface: str) -> str:
        media = self.media_ports.get(interface)
        ports = f"media_ports: [{media[0]}, {media[1]}], " if media is not None else ""
        listener = self.tls.get(interface)
        if listener is None:
            return ports + "transports: [udp, tcp]"
        return ports + f"transports: [udp, tcp, tls], tls: {listener.yaml()}"

    # -- log and hot reload ---------------------------------------------------
    def log_offset(self) -> int:
        """Current size of the SBC's stdout log: pass it to :meth:`log_events`."""
        try:
            return self.stdout_path.stat().st_size
        except OSError:
            return 0

    def log_events(self, since: int = 0) -> list[dict[str, Any]]:
        """The JSON log lines (sbc/log.py: JSON when stdout is not a tty) after ``since``.

        Only complete lines count: the SBC may be writing the last one.
        """
        try:
            with self.stdout_path.open("rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return []
        events: list[dict[str, Any]] = []
        for line in data.split(b"\n")[:-1]:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    def wait_log_event(
        self,
        names: Sequence[str] | frozenset[str] | set[str],
        since: int,
        timeout: float = 10.0,
        **fields: object,
    ) -> dict[str, Any] | None:
        """The first event named one of ``names`` (and carrying ``fields``, if
        given) logged after byte ``since`` of the log; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.log_events(since):
                if event.get("event") in names and all(
                    event.get(k) == v for k, v in fields.items()
                ):
                    return event
            if time.monotonic() >= deadline or not self.alive():
                return None
            time.sleep(0.05)

    def rewrite_policy(self, name: str, text: str, timeout: float = 10.0) -> dict[str, Any]:
        """Replace one policy file atomically and wait for the reload that follows.

        Writes a temporary file in the same directory then ``os.replace``s it,
        as a careful operator (or a deploy tool) would, so the watcher never
        reads a half-written file. Returns the ``policy.reloaded`` or
        ``policy.refused`` event; raises ``AssertionError`` if none is logged
        within ``timeout`` seconds (the watcher polls every second and waits
        one more for the edit to settle).
        """
        since = self.log_offset()
        target = self.policies / name
        tmp = self.policies / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(text)
        os.replace(tmp, target)
        event = self.wait_log_event(RELOAD_EVENTS, since, timeout)
        if event is None:
            raise AssertionError(
                f"no policy.reloaded/refused within {timeout}s after rewriting {name}\n"
                f"stderr:\n{self.stderr_tail()}"
            )
        return event

    def start(self, ready_timeout: float = 10.0) -> SbcProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sbc", "run", "--policies", str(self.policies)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"SBC exited early rc={self.proc.returncode}\nstderr:\n{self.stderr_tail()}"
                )
            if options_ping(CARRIER_IP, self.ext, timeout=0.3) == 200:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"SBC not ready after {ready_timeout}s (no 200 to OPTIONS on {self.ext_uri})\n"
            f"stderr:\n{self.stderr_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def rss_kib(self) -> int:
        assert self.proc is not None
        return read_rss_kib(self.proc.pid)

    def stop(self, grace: float = 5.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def read_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def serving(sbc: SbcProcess, env: Mapping[str, str] | None = None) -> Iterator[SbcProcess]:
    """Start ``sbc`` (with ``env`` added to its environment), yield it, stop it.

    For module fixtures: ``yield from serving(SbcProcess(...))``. A start that
    fails fails the test with the SBC's stderr, rather than erroring it.
    """
    import pytest  # only the fixtures need it; the benchmarks import this module too

    with pytest.MonkeyPatch.context() as patch:  # the SBC copies os.environ at start
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        try:
            sbc.start()
        except RuntimeError as exc:
            pytest.fail(f"SBC did not start: {exc}", pytrace=False)
    try:
        yield sbc
    finally:
        sbc.stop()


@contextlib.contextmanager
def running_sbc(workdir: Path, **kwargs: object) -> Iterator[SbcProcess]:
    sbc = SbcProcess(workdir, **kwargs)  # type: ignore[arg-type]
    sbc.start()
    try:
        yield sbc
    finally:
        sbc.stop()


# --------------------------------------------------------------------------
# Topology-hiding checks
# --------------------------------------------------------------------------


def leaks(messages: Sequence[SipMessage], needles: Sequence[str], part: str = "all") -> list[str]:
    """Lines of ``messages`` that contain any of ``needles`` (for assertions).

    ``part``: "all", "headers" (start line and headers) or "body".
    """
    found: list[str] = []
    for m in messages:
        if part == "headers":
            lines = [m.start_line] + [f"{n}: {v}" for n, v in m.headers]
        elif part == "body":
            lines = m.body.splitlines()
        else:
            lines = m.raw.splitlines()
        found.extend(
            f"{m.start_line!r}: {line.strip()!r}"
            for line in lines
            if any(n in line for n in needles)
        )
    return found
