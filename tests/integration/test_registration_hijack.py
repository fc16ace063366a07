"""Registration hijack through the relay, against a real registrar (issue 11).

The external interface relays REGISTERs to the ``pbx`` trunk, where SIPp runs
``uas_registrar_auth_loop.xml``: every REGISTER the SBC sends for an AOR
arrives in that AOR's one Call-ID, and each is checked by SIPp's verifyauth —
valid digest credentials get 200, anything else 401.

The victim is a raw UDP socket on 127.0.0.30 that registers ``alice`` with
credentials computed here (RFC 2617, independently of the SBC). Then the
attackers, raw UDP sockets on 127.0.0.66 and on the victim's own address
with another port, try: their own Contact for alice without and with forged
credentials, her removal (``Expires: 0``, ``Contact: *``), a query, and a
refresh from the victim's address with her Contact. Finally the PBX (SIPp
``uac_failure`` on 127.0.0.20) calls alice: the INVITE must reach the
victim's socket — which answers 486 — and no attacker socket ever hears of
it. The registrar's log shows the one 200 it gave; the admin plane shows the
binding where the victim is and counts the refused attempts.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from harness import (
    DEFAULT_ROUTES_YAML,
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    SbcProcess,
    SipMessage,
    Sipp,
    free_media_range,
    leaks,
    serving,
)

pytestmark = pytest.mark.integration

TOKEN = "registration-hijack-admin-token-" + uuid.uuid4().hex
VICTIM_IP = "127.0.0.30"
ATTACKER_IP = "127.0.0.66"
REALM = "registrar.example"
NONCE = uuid.uuid4().hex
USER = "alice"
PASSWORD = "right-" + uuid.uuid4().hex[:12]
VICTIM_CONTACT = f"sip:{USER}@192.168.1.5:5060"  # the phone's private address
ATTACKER_CONTACT = f"sip:{USER}@{ATTACKER_IP}:5060"
WAIT_S = 5.0  # bound on every wait for an answer

RELAY_ROUTES = "routes:\n  - {name: to-phones, from_trunk: pbx, to_registered: true}\n" + "".join(
    line + "\n" for line in DEFAULT_ROUTES_YAML.splitlines()[1:]
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class RawPhone:
    """A UDP socket speaking just enough SIP: REGISTERs out, anything in."""

    name: str
    ip: str
    sbc: tuple[str, int]
    sock: socket.socket = field(init=False)
    port: int = field(init=False)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cseq: int = 0
    received: list[SipMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, 0))
        self.port = int(self.sock.getsockname()[1])

    @property
    def ruri(self) -> str:
        return f"sip:{self.sbc[0]}:{self.sbc[1]}"

    def close(self) -> None:
        self.sock.close()

    def register(
        self,
        contact: str | None,
        *,
        expires: int | None = 3600,
        authorization: str | None = None,
    ) -> SipMessage:
        """Send a REGISTER for alice; return the final answer to it."""
        self.cseq += 1
        lines = [
            f"REGISTER {self.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch=z9hG4bK{uuid.uuid4().hex};rport",
            "Max-Forwards: 70",
            f"From: <sip:{USER}@example.net>;tag={self.name}",
            f"To: <sip:{USER}@example.net>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
        ]
        if contact is not None:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        lines.append("Content-Length: 0")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.sbc)
        return self.wait(lambda m: m.cseq_number == self.cseq and (m.status or 0) >= 200)

    def wait(self, matches: object, timeout: float = WAIT_S) -> SipMessage:
        """The first message received (from now on) that ``matches``."""
        assert callable(matches)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            if message is not None and matches(message):
                return message
        raise AssertionError(f"{self.name}: nothing matching within {timeout:g}s")

    def receive(self, timeout: float) -> SipMessage | None:
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None
        message = SipMessage.parse("received", "UDP", "", data.decode(errors="replace"))
        self.received.append(message)
        return message

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive(deadline - time.monotonic())

    def answer(self, request: SipMessage, status: int, reason: str) -> None:
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {via}" for via in request.header_all("Via")]
        lines += [
            f"From: {request.header('From')}",
            f"To: {request.header('To')};tag={self.name}-callee",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.header('CSeq')}",
            "Content-Length: 0",
        ]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.sbc)


def challenge_of(response: SipMessage) -> dict[str, str]:
    value = response.header("WWW-Authenticate") or ""
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def credentials(phone: RawPhone, challenge: dict[str, str], password: str) -> str:
    """RFC 2617 §3.2.2 Authorization (MD5, qop=auth) for ``phone``'s REGISTER."""
    cnonce, nc = uuid.uuid4().hex[:8], "00000001"
    ha1 = md5(f"{USER}:{challenge['realm']}:{password}")
    ha2 = md5(f"REGISTER:{phone.ruri}")
    response = md5(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{USER}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}",'
        f' uri="{phone.ruri}", response="{response}", algorithm=MD5, qop=auth, nc={nc},'
        f' cnonce="{cnonce}"'
    )


def interfaces_yaml(sbc: SbcProcess) -> str:
    relay = "registration: {registrar: pbx, client_expires_s: 60, keepalive_s: 60}"
    ranges = {
        name: free_media_range(ip, 4) for name, ip in (("ext", SBC_EXT_IP), ("int", SBC_INT_IP))
    }
    return (
        "interfaces:\n"
        f"  - {{name: external, address: {SBC_EXT_IP}, port: {sbc.ports.ext}, transports: [udp],"
        f" media_address: {SBC_EXT_IP}, media_ports: {list(ranges['ext'])}, {relay}}}\n"
        f"  - {{name: internal, address: {SBC_INT_IP}, port: {sbc.ports.int_}, transports: [udp],"
        f" media_address: {SBC_INT_IP}, media_ports: {list(ranges['int'])}}}\n"
    )


@pytest.fixture(scope="module")
def relay_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-hijack"), admin_token=TOKEN, routes_yaml=RELAY_ROUTES
    )
    sbc.extra_files["interfaces.yaml"] = interfaces_yaml(sbc)
    sbc.write_policies()
    yield from serving(sbc)


def admin(sbc: SbcProcess, path: str) -> httpx.Response:
    with httpx.Client(base_url=sbc.admin_url, timeout=5.0) as client:
        response = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    return response


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert m is not None, name
    return float(m.group(1))


def test_hijack_attempts_leave_the_victims_calls_with_the_victim(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    registrar = Sipp(
        "uas_registrar_auth_loop",
        local_ip=PBX_IP,
        local_port=relay_sbc.ports.pbx,
        workdir=tmp_path,
        name="registrar",
        timeout_s=60,
        keys={
            "realm": REALM,
            "nonce": NONCE,
            "username": USER,
            "password": PASSWORD,
            "granted": "3600",  # all we asked: fresh upstream, so refreshes may be absorbed
        },
    )
    sbc_ext = relay_sbc.ext
    victim = RawPhone("victim", VICTIM_IP, sbc_ext)
    attacker = RawPhone("attacker", ATTACKER_IP, sbc_ext)
    neighbour = RawPhone("neighbour", VICTIM_IP, sbc_ext)  # the victim's address, another port
    caller: Sipp | None = None
    try:
        registrar.start()
        # The victim registers: challenged, then accepted with its credentials.
        challenge = victim.register(f"<{VICTIM_CONTACT}>")
        assert challenge.status == 401, challenge.raw
        auth = credentials(victim, challenge_of(challenge), PASSWORD)
        ok = victim.register(f"<{VICTIM_CONTACT}>", authorization=auth)
        assert ok.status == 200, ok.raw
        assert ok.contact_uri == VICTIM_CONTACT

        # The attacks. Every one that would change the binding goes to the registrar.
        first = attacker.register(f"<{ATTACKER_CONTACT}>")
        assert first.status == 401, first.raw  # never the SBC's own 200
        forged = credentials(attacker, challenge_of(first), "guessed")
        attempts = {
            "own contact, forged credentials": attacker.register(
                f"<{ATTACKER_CONTACT}>", authorization=forged
            ),
            "Expires: 0": attacker.register(f"<{VICTIM_CONTACT}>", expires=0),
            "Contact: *": attacker.register("*", expires=0),
            "refresh from the victim's address": neighbour.register(f"<{VICTIM_CONTACT}>"),
        }
        for what, answer in attempts.items():
            assert answer.status == 401, f"{what}: {answer.raw}"
        query = attacker.register(None, expires=None)
        assert query.status == 200, query.raw
        assert query.header("Contact") is None, query.raw
        assert not leaks([query], ["192.168.1.5", VICTIM_IP])

        # The PBX calls alice: the victim's socket gets the INVITE and says busy.
        caller = Sipp(
            "uac_failure",
            local_ip=PBX_IP,
            remote=relay_sbc.int_uri,
            service=USER,
            workdir=tmp_path,
            name="pbx-call",
            timeout_s=15,
        )
        caller.start(wait_bind=False)
        invite = victim.wait(lambda m: m.method == "INVITE")
        assert invite.request_uri == VICTIM_CONTACT
        victim.answer(invite, 486, "Busy Here")
        pbx = caller.wait(20)
        for phone in (attacker, neighbour):
            phone.drain(0.5)
        rows = {(r["kind"], r["name"]): r for r in admin(relay_sbc, "/registrations").json()}
        metrics = admin(relay_sbc, "/metrics").text
    finally:
        for sipp in (caller, registrar):
            if sipp is not None:
                sipp.stop()
        for phone in (victim, attacker, neighbour):
            phone.close()

    assert [s for s in pbx.statuses("INVITE") if s >= 200] == [486], pbx.describe()
    for phone in (attacker, neighbour):
        requests = [m.start_line for m in phone.received if m.is_request]
        assert not requests, f"{phone.name} was sent {requests}"

    # The registrar granted exactly one REGISTER: the victim's, with credentials.
    reg = registrar.result()
    answers = [m.status for m in reg.responses("REGISTER", "sent")]
    assert answers.count(200) == 1, reg.describe()
    assert answers.count(401) == 1 + 1 + len(attempts), reg.describe()
    leaked = leaks(reg.received, [ATTACKER_IP, VICTIM_IP, "192.168.1.5"])
    assert not leaked, "a phone's address reached the registrar:\n" + "\n".join(leaked)

    row = rows[("relayed", USER)]
    assert row["source"] == f"udp:{VICTIM_IP}:{victim.port}", row
    assert row["contact"] == VICTIM_CONTACT, row
    assert metric(metrics, "sbc_registration_relay_hijacks_refused_total") == 1 + len(attempts)
    assert metric(metrics, "sbc_registration_relay_queries_hidden_total") == 1
    assert metric(metrics, "sbc_registration_relay_bindings") == 1
