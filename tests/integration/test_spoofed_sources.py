"""Forged sources against the running SBC: spoofed UDP from raw sockets on loopback.

Over UDP anyone can send a datagram "from" any address. These tests build the
IP and UDP headers themselves (raw sockets, so root is needed; loopback
delivers them like any other datagram, with the forged source as
``recvfrom`` reports it) and check that what a forger can do from someone
else's address never silences that someone (docs/security.md):

- (a) bogus digest credentials "from" a ``require_auth`` trunk: counted and
  alerted on, never a ban; the trunk's real SIPp calls authenticate and
  complete (uac_digest.xml, SIPp's ``-au``/``-ap``);
- (b) a scanner User-Agent "from" the carrier, the PBX, or a phone registered
  through the relay with a call up: no ban, the calls end normally;
- (c) a stranger sending garbage is banned by its strikes (its valid OPTIONS
  then go unanswered) while the carrier's calls go on;
- (d) IPv6: a scanner User-Agent forged from ``::5:0:0:7`` bans the whole
  ``::/64`` (``source_prefix.ipv6``), so ``::1`` in it is silenced too.

What the far ends received is read from SIPp's message logs; bans and alerts
from the SBC's JSON log.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from attackers import spoof_udp
from harness import (
    CARRIER_IP,
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    SbcProcess,
    Sipp,
    SippResult,
    free_port,
    options_ping,
    options_request,
    run_pair,
    serving,
    sip_status,
)
from test_sipp_registrations import (
    PHONE_IP,
    RELAY_ROUTES,
    TOKEN,
    phone,
    registered_at_sbc,
    relay_interfaces_yaml,
    relay_registrar,
    stop_all,
    wait_for,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets (forged sources) need root"),
]

REALM = "sbc.test"
AUTH_USER = "carrier1"
AUTH_PASSWORD = "pw-" + uuid.uuid4().hex[:12]
AUTH_ENV = "SBC_TEST_SPOOF_CARRIER_AUTH"
AUTH_FAILURES = 5  # bans.auth_failures: the forger sends more than that
FORGED_AUTH = 12
GARBAGE_IP = "127.0.0.95"
BYSTANDER_IP = "127.0.0.94"
V6_FORGED = "::5:0:0:7"  # in ::/64, like ::1 (which the kernel lets us receive on)


def request(
    method: str, target: str, src: str, sport: int, *, headers: str = "", user: str = "100"
) -> bytes:
    host = f"[{src}]" if ":" in src else src
    return (
        f"{method} sip:{user}@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:caller@{host}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@{target}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:caller@{host}:{sport}>\r\n"
        f"{headers}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def scanner_options(target: str, src: str, sport: int) -> bytes:
    return request("OPTIONS", target, src, sport, headers="User-Agent: friendly-scanner\r\n")


def answers(src: str, dst: tuple[str, int], quiet: float = 1.0) -> list[int]:
    """Statuses an OPTIONS from ``src`` (a real socket) gets within ``quiet`` s."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        port = s.getsockname()[1]
        target = f"[{dst[0]}]:{dst[1]}" if ":" in dst[0] else f"{dst[0]}:{dst[1]}"
        s.sendto(
            options_request(target, f"[{src}]" if family == socket.AF_INET6 else src, port), dst
        )
        statuses = []
        s.settimeout(quiet)
        while True:
            try:
                status = sip_status(s.recv(65535))
            except (TimeoutError, ConnectionRefusedError):
                return statuses
            if status is not None:
                statuses.append(status)


def banned_sources(sbc: SbcProcess, since: int) -> list[object]:
    return [e.get("source") for e in sbc.log_events(since) if e.get("event") == "guard.banned"]


def callee(sbc: SbcProcess, tmp: Path, name: str = "pbx") -> Sipp:
    return Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        calls=1000,
        timeout_s=60,
        workdir=tmp,
        name=name,
    )


def successful(res: SippResult) -> int:
    return res.counter("Successful call") or 0


# --------------------------------------------------------------------------
# (a) forged auth failures from a require_auth trunk
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """The carrier must authenticate (require_auth, MD5 for SIPp)."""
    sbc = SbcProcess(tmp_path_factory.mktemp("sbc-spoof-auth"))
    p = sbc.ports
    sbc.extra_files["trunks.yaml"] = (
        "trunks:\n"
        f"  - {{name: carrier, interface: external, address: {CARRIER_IP}, "
        f"port: {p.carrier}, transport: udp, require_auth: {{realm: {REALM}, "
        f"users: {{{AUTH_USER}: {{env: {AUTH_ENV}}}}}, algorithm: MD5}}}}\n"
        f"  - {{name: pbx, interface: internal, address: {PBX_IP}, "
        f"port: {p.pbx}, transport: udp}}\n"
    )
    sbc.extra_files["security.yaml"] = f"bans: {{auth_failures: {AUTH_FAILURES}}}\n"
    sbc.write_policies()
    yield from serving(sbc, env={AUTH_ENV: AUTH_PASSWORD})


def test_forged_auth_failures_never_silence_a_require_auth_trunk(
    auth_sbc: SbcProcess, tmp_path: Path
) -> None:
    """(a) Twelve spoofed INVITEs from the carrier's address with a bogus
    Authorization: counted and alerted on; then the carrier's real calls are
    challenged, authenticate and complete."""
    sbc = auth_sbc
    since = sbc.log_offset()
    port = free_port(CARRIER_IP)  # nobody listens there: the 401s go nowhere
    bogus = (
        f'Authorization: Digest username="{AUTH_USER}", realm="{REALM}", nonce="forged", '
        f'uri="sip:1@{sbc.ext_uri}", response="{"0" * 32}", algorithm=MD5\r\n'
    )
    for _ in range(FORGED_AUTH):
        spoof_udp(
            CARRIER_IP,
            port,
            sbc.ext,
            request("INVITE", sbc.ext_uri, CARRIER_IP, port, headers=bogus),
        )
    seen = sbc.wait_log_event({"guard.auth_alert", "guard.banned"}, since, timeout=10)
    assert seen is not None, "the forged INVITEs never reached the SBC"

    caller = Sipp(
        "uac_digest",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        service="4930100",
        calls=5,
        rate=5,
        duration_ms=200,
        timeout_s=30,
        workdir=tmp_path,
        name="carrier-digest",
        # the digest uri is the Request-URI (SIPp's default leaves the user out)
        extra=["-au", AUTH_USER, "-ap", AUTH_PASSWORD, "-auth_uri", f"4930100@{sbc.ext_uri}"],
    )
    pbx_res, res = run_pair(callee(sbc, tmp_path), caller)
    assert res.ok, res.describe()
    assert successful(res) == 5, res.describe()
    assert res.statuses("INVITE").count(401) == 5  # each call challenged once, then served
    assert len({m.call_id for m in pbx_res.requests("INVITE", "received")}) == 5

    assert CARRIER_IP not in banned_sources(sbc, since)
    alerts = [e for e in sbc.log_events(since) if e.get("event") == "guard.auth_alert"]
    assert [(e.get("trunk"), e.get("user")) for e in alerts] == [("carrier", AUTH_USER)]
    assert AUTH_PASSWORD not in (sbc.stdout_path.read_text() + sbc.stderr_tail(100_000))


# --------------------------------------------------------------------------
# (b)-(d): the demo topology plus an IPv6 interface on ::1
# --------------------------------------------------------------------------


def _v6_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def plain_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """Default security.yaml (strikes: 50, the scanner list, IPv6 /64 keys)."""
    sbc = SbcProcess(tmp_path_factory.mktemp("sbc-spoof"))
    p = sbc.ports
    sbc.v6_port = _v6_port()  # type: ignore[attr-defined]
    sbc.extra_files["interfaces.yaml"] = (
        "interfaces:\n"
        f"  - {{name: external, address: {SBC_EXT_IP}, port: {p.ext}, "
        f"transports: [udp, tcp], media_address: {SBC_EXT_IP}}}\n"
        f"  - {{name: internal, address: {SBC_INT_IP}, port: {p.int_}, "
        f"transports: [udp, tcp], media_address: {SBC_INT_IP}}}\n"
        f"  - {{name: v6, address: '::1', port: {sbc.v6_port}, "  # type: ignore[attr-defined]
        "transports: [udp], media_address: '::1', media_ports: [39000, 39007]}\n"
    )
    sbc.write_policies()
    yield from serving(sbc)


def test_forged_scanner_agent_from_the_trunks_bans_neither(
    plain_sbc: SbcProcess, tmp_path: Path
) -> None:
    """(b) While the carrier's calls are up, scanner User-Agents forged from the
    carrier's and the PBX's addresses ban nobody: every call ends with its BYE."""
    sbc = plain_sbc
    since = sbc.log_offset()
    caller = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        service="4930100",
        calls=3,
        rate=3,
        duration_ms=3000,
        timeout_s=30,
        workdir=tmp_path,
        name="carrier",
    )
    pbx = callee(sbc, tmp_path)
    pbx.start()
    try:
        caller.start(wait_bind=False)
        assert sbc.wait_log_event({"call.answered"}, since, timeout=10) is not None
        for src, dst, target in (
            (CARRIER_IP, sbc.ext, sbc.ext_uri),
            (PBX_IP, sbc.int_, sbc.int_uri),
        ):
            port = free_port(src)
            for _ in range(3):
                spoof_udp(src, port, dst, scanner_options(target, src, port))
        res = caller.wait()
    finally:
        caller.stop()
        pbx.stop()
    assert res.ok, res.describe()
    assert successful(res) == 3, res.describe()
    assert banned_sources(sbc, since) == []
    assert options_ping(CARRIER_IP, sbc.ext) == 200


def test_garbage_flood_bans_the_stranger_while_calls_go_on(
    plain_sbc: SbcProcess, tmp_path: Path
) -> None:
    """(c) A stranger's garbage counts as strikes: it is banned, and its valid
    OPTIONS then go unanswered; the carrier's calls meanwhile all complete."""
    sbc = plain_sbc
    assert answers(GARBAGE_IP, sbc.ext) == [403]  # a stranger: answered, not banned
    since = sbc.log_offset()
    caller = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        service="4930100",
        calls=20,
        rate=10,
        duration_ms=500,
        timeout_s=30,
        workdir=tmp_path,
        name="carrier",
    )
    garbage = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
        b"GET / HTTP/1.1\r\nHost: sbc\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nVia: ???\r\n\r\n",
        os.urandom(200),
    ]
    pbx = callee(sbc, tmp_path)
    pbx.start()
    try:
        caller.start(wait_bind=False)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((GARBAGE_IP, 0))
            for n in range(300):
                s.sendto(garbage[n % len(garbage)], sbc.ext)
                if n % 50 == 49:
                    time.sleep(0.05)  # a flood, not a burst the socket buffer drops
        ban = sbc.wait_log_event({"guard.banned"}, since, timeout=10, source=GARBAGE_IP)
        res = caller.wait()
    finally:
        caller.stop()
        pbx.stop()
    assert ban is not None, banned_sources(sbc, since)
    assert ban.get("reason") == "malformed", ban
    assert answers(GARBAGE_IP, sbc.ext) == []  # banned: its valid OPTIONS hear nothing
    assert answers(BYSTANDER_IP, sbc.ext) == [403]  # another stranger is not
    assert res.ok, res.describe()
    assert successful(res) == 20, res.describe()


def test_an_ipv6_ban_covers_the_forgers_64(plain_sbc: SbcProcess) -> None:
    """(d) A scanner User-Agent forged from ::5:0:0:7 bans ::/64, where ::1
    (a real socket here) lives too: keyed per /128, ::1 would still be answered."""
    sbc = plain_sbc
    v6 = ("::1", sbc.v6_port)  # type: ignore[attr-defined]
    assert answers("::1", v6) == [403]
    since = sbc.log_offset()
    port = _v6_port()
    spoof_udp(V6_FORGED, port, v6, scanner_options(f"[::1]:{v6[1]}", V6_FORGED, port))
    ban = sbc.wait_log_event({"guard.banned"}, since, timeout=10)
    assert ban is not None
    assert (ban.get("source"), ban.get("reason")) == ("::/64", "scanner"), ban
    assert answers("::1", v6) == []


# --------------------------------------------------------------------------
# (b) a phone registered through the relay, with a call up
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-spoof-relay"), admin_token=TOKEN, routes_yaml=RELAY_ROUTES
    )
    sbc.extra_files["interfaces.yaml"] = relay_interfaces_yaml(sbc)
    sbc.write_policies()
    yield from serving(sbc)


def test_forged_scanner_agent_from_a_phone_in_a_call_does_not_cut_it(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    """(b) A phone registered through the relay is called by the PBX; while
    the call is up, a scanner User-Agent forged from the phone's address must
    not ban it: the phone's 200 to the PBX's BYE still crosses."""
    sbc = relay_sbc
    registrar = relay_registrar(sbc, tmp_path)
    handset = phone(sbc, PHONE_IP, "alice", tmp_path)
    caller = Sipp(
        "uac_basic",
        local_ip=PBX_IP,
        remote=sbc.int_uri,
        service="alice",
        duration_ms=3000,
        workdir=tmp_path,
        name="pbx-call-alice",
        timeout_s=20,
    )
    since = sbc.log_offset()
    try:
        registrar.start()
        handset.start()
        wait_for(registered_at_sbc(sbc, "alice"), "alice registered through the SBC")
        caller.start(wait_bind=False)
        assert sbc.wait_log_event({"call.answered"}, since, timeout=10) is not None
        port = free_port(PHONE_IP)
        for _ in range(3):
            spoof_udp(PHONE_IP, port, sbc.ext, scanner_options(sbc.ext_uri, PHONE_IP, port))
        pbx = caller.wait(25)
        ph = handset.wait(30)
    finally:
        stop_all([caller, handset, registrar])
    assert pbx.ok, pbx.describe()
    assert successful(pbx) == 1, pbx.describe()
    assert ph.ok, ph.describe()
    assert PHONE_IP not in banned_sources(sbc, since)
    spared = [e for e in sbc.log_events(since) if e.get("event") == "guard.scanner_spared"]
    assert [e.get("source") for e in spared] == [PHONE_IP]
