"""Registrations with real peers (SIPp): the SBC's own registrations with
trunks, and phones behind NAT registering through the SBC's relay.

1. Outbound registration (RFC 3261 §10.2). Three registrar trunks on the
   external side, each a SIPp UAS started *before* the SBC (the first
   REGISTER goes out at start-up): ``reg-refresh`` (127.0.0.40) grants 4 s
   twice, then 60 s (uas_registrar_refresh.xml); ``reg-digest`` (127.0.0.41)
   and ``reg-badauth`` (127.0.0.42) challenge with 401 and check the answer
   with SIPp's verifyauth (uas_registrar_digest.xml) — the SBC knows the
   right password for the first, a wrong one for the second. One SBC run
   serves the three tests, which read the registrars' message logs and
   ``GET /registrations``.
2. Registration relay (RFC 3261 §10, RFC 5626 §5 in spirit). The external
   interface relays REGISTERs to the ``pbx`` trunk, the registrar (a SIPp UAS
   on the PBX's port: uas_registrar_relay.xml, or uas_registrar_digest.xml
   to authenticate the phone). A phone (SIPp on 127.0.0.30-32) registers
   with a Via and Contact naming a private address it cannot be reached at
   (uac_phone_register.xml, whose calls and keepalives run in the
   out-of-call scenario ooc_phone.xml); the PBX (a SIPp UAC on 127.0.0.20)
   calls the phone's user; the call, the keepalives, the locally answered
   refresh and the phone's removal are read from the three message logs.
   A call the registrar retargets to the Contact the SBC registered upstream
   reaches the phone too.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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
    SippResult,
    TrunkDef,
    free_ports,
    leaks,
    scenario_path,
    serving,
)

pytestmark = pytest.mark.integration

TOKEN = "registrations-admin-token-32-chars-or-more"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# --- outbound registration ------------------------------------------------------------

REFRESH_IP = "127.0.0.40"
DIGEST_IP = "127.0.0.41"
BADAUTH_IP = "127.0.0.42"
ASKED_S = 60  # expires_s of every registering trunk (the schema's minimum)
SHORT_GRANT_S = 4  # what uas_registrar_refresh.xml grants twice
REALM = "registrar.example"
USERNAME = "sbc-trunk"
PASSWORD = "right-" + uuid.uuid4().hex[:12]
PASSWORD_ENV = "SBC_TEST_REGISTRAR_PASSWORD"
WRONG_PASSWORD_ENV = "SBC_TEST_REGISTRAR_WRONG_PASSWORD"
#: How long reg-badauth waits after its second 401 for a REGISTER that must not come.
BADAUTH_LINGER_MS = 3000

# --- registration relay ---------------------------------------------------------------

PHONE_IP = "127.0.0.30"
PHONE2_IP = "127.0.0.31"
PHONE3_IP = "127.0.0.32"
PRIVATE_CONTACT_HOST = "192.168.1.5"  # what the phones' Via, Contact and SDP name
CLIENT_EXPIRES_S = 20
KEEPALIVE_S = 1
PHONE_LINGER_MS = 3000  # keepalives due every KEEPALIVE_S arrive meanwhile

RELAY_ROUTES = "routes:\n  - {name: to-phones, from_trunk: pbx, to_registered: true}\n" + "".join(
    line + "\n" for line in DEFAULT_ROUTES_YAML.splitlines()[1:]
)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def api(sbc: SbcProcess) -> httpx.Client:
    return httpx.Client(base_url=sbc.admin_url, headers=AUTH, timeout=5.0)


def registrations(sbc: SbcProcess) -> dict[tuple[str, str], dict[str, Any]]:
    """``GET /registrations`` keyed by (kind, name)."""
    with api(sbc) as client:
        response = client.get("/registrations")
    assert response.status_code == 200, response.text
    return {(row["kind"], row["name"]): row for row in response.json()}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` (a bounded wait, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def when(message: SipMessage) -> datetime:
    return datetime.strptime(message.timestamp, "%Y-%m-%d %H:%M:%S.%f")


def by_cseq(messages: Sequence[SipMessage]) -> list[SipMessage]:
    """The first of each CSeq, in order: retransmissions over UDP do not count twice."""
    seen: dict[int | None, SipMessage] = {}
    for message in messages:
        seen.setdefault(message.cseq_number, message)
    return list(seen.values())


def transactions(messages: Sequence[SipMessage]) -> set[tuple[str | None, int | None]]:
    """(Call-ID, CSeq) of each request: one per transaction, whatever the retransmissions."""
    return {(m.call_id, m.cseq_number) for m in messages}


def answers(res: SippResult, method: str) -> list[tuple[int | None, int | None]]:
    """(CSeq, status) of each final response ``res`` sent to ``method``, first of each."""
    finals = [m for m in res.responses(method, "sent") if (m.status or 0) >= 200]
    return [(m.cseq_number, m.status) for m in by_cseq(finals)]


def param(header: str | None, name: str) -> str | None:
    if header is None:
        return None
    m = re.search(rf";\s*{name}\s*=\s*([^;,\s>]+)", header, re.IGNORECASE)
    return m.group(1) if m else None


def uri_user(uri: str | None) -> str | None:
    if uri is None or "@" not in uri:
        return None
    return uri.split(":", 1)[1].split("@", 1)[0]


def digest_params(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` credentials value (RFC 2617 §3.2.2)."""
    assert value.startswith("Digest "), value
    pairs = re.findall(r'([\w-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)', value[len("Digest ") :])
    return {k.lower(): v[1:-1] if v.startswith('"') else v for k, v in pairs}


def md5_response(params: dict[str, str], method: str, password: str) -> str:
    """RFC 2617 §3.2.2.1 with qop=auth, computed here, independently of sbc.auth."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{params['username']}:{params['realm']}:{password}")
    ha2 = md5(f"{method}:{params['uri']}")
    return md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")


def assert_ok(*results: SippResult) -> None:
    for res in results:
        assert res.ok, "\n".join(r.describe() for r in results)


def stop_all(sipps: Sequence[Sipp]) -> None:
    for sipp in sipps:
        sipp.stop()  # by PID; a no-op for those that ended


# --------------------------------------------------------------------------
# 1. outbound registration
# --------------------------------------------------------------------------


def _registering_trunk(name: str, address: str, aor_user: str, auth_env: str | None) -> TrunkDef:
    extra = f"register: {{aor_user: '{aor_user}', expires_s: {ASKED_S}}}"
    if auth_env is not None:
        extra += f", auth: {{username: {USERNAME}, password: {{env: {auth_env}}}}}"
    return TrunkDef(name, "external", address, transport="udp", extra=extra)


@dataclass(frozen=True)
class OutboundRun:
    """What each registrar received, and what the admin plane said afterwards."""

    sbc: SbcProcess
    refresh: SippResult
    digest: SippResult
    badauth: SippResult
    nonce: str
    status: dict[tuple[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboundRun]:
    """One SBC registering with three registrars at once; the registrars run
    to their scenario's end, then ``GET /registrations`` is read."""
    workdir = tmp_path_factory.mktemp("sbc-register")
    sbc = SbcProcess(
        workdir,
        admin_token=TOKEN,
        extra_trunks=[
            _registering_trunk("reg-refresh", REFRESH_IP, "+15550000040", None),
            _registering_trunk("reg-digest", DIGEST_IP, "+15550000041", PASSWORD_ENV),
            _registering_trunk("reg-badauth", BADAUTH_IP, "+15550000042", WRONG_PASSWORD_ENV),
        ],
    )
    nonce = uuid.uuid4().hex
    digest_keys = {"realm": REALM, "nonce": nonce, "username": USERNAME, "password": PASSWORD}

    def registrar(trunk: str, scenario: str, **kw: Any) -> Sipp:
        ip, port = sbc.trunk(trunk)
        return Sipp(scenario, local_ip=ip, local_port=port, workdir=workdir, name=trunk, **kw)

    sipps = [
        registrar("reg-refresh", "uas_registrar_refresh", timeout_s=20),
        registrar("reg-digest", "uas_registrar_digest", keys=digest_keys, timeout_s=20),
        registrar(
            "reg-badauth",
            "uas_registrar_digest",
            keys=digest_keys,
            duration_ms=BADAUTH_LINGER_MS,
            timeout_s=20,
        ),
    ]
    try:
        for sipp in sipps:  # listening before the SBC's first REGISTER
            sipp.start()
        with pytest.MonkeyPatch.context() as env:  # the SBC copies os.environ at start
            env.setenv(PASSWORD_ENV, PASSWORD)
            env.setenv(WRONG_PASSWORD_ENV, "wrong-" + PASSWORD)
            try:
                sbc.start()
            except RuntimeError as exc:
                pytest.fail(f"SBC did not start: {exc}", pytrace=False)
        refresh, digest, badauth = (sipp.wait(30) for sipp in sipps)
        status = registrations(sbc)
        yield OutboundRun(sbc, refresh, digest, badauth, nonce, status)
    finally:
        stop_all(sipps)
        sbc.stop()


def test_outbound_registration_refreshes_before_expiry(outbound: OutboundRun) -> None:
    """reg-refresh grants 4 s (Contact expires, then the Expires header): the
    SBC refreshes the same binding (Call-ID, From tag, CSeq + 1) before each
    grant runs out, then keeps the 60 s binding; the admin plane says so."""
    registrar = outbound.refresh
    assert_ok(registrar)
    registers = by_cseq(registrar.requests("REGISTER", "received"))
    assert len(registers) == 3, registrar.describe()  # the scenario's three grants
    assert answers(registrar, "REGISTER") == [(r.cseq_number, 200) for r in registers]

    first = registers[0]
    assert {r.call_id for r in registers} == {first.call_id}, "one Call-ID per binding (§10.2)"
    assert {r.from_tag for r in registers} == {first.from_tag}
    cseqs = [r.cseq_number or 0 for r in registers]
    assert cseqs == list(range(cseqs[0], cseqs[0] + 3)), cseqs

    ip, port = outbound.sbc.trunk("reg-refresh")
    assert first.request_uri == f"sip:{ip}:{port}"
    assert uri_user(first.header("To")) == "+15550000040"
    for register in registers:  # asks for 60 s in both places (§10.2.1.1)
        assert register.contact_uri == f"sip:+15550000040@{outbound.sbc.ext_uri}"
        assert param(register.header("Contact"), "expires") == str(ASKED_S)
        assert register.header("Expires") == str(ASKED_S)

    # Each refresh comes after the SBC waited (half-life of 4 s: 2 s), and
    # before the 4 s granted by the previous 200 ran out.
    oks = {m.cseq_number: m for m in registrar.responses("REGISTER", "sent")}
    for previous, refresh in itertools.pairwise(registers):
        waited = (when(refresh) - when(oks[previous.cseq_number])).total_seconds()
        assert 1.0 <= waited < SHORT_GRANT_S, (previous.cseq_number, waited)

    row = outbound.status[("trunk", "reg-refresh")]
    assert row["state"] == "registered", row
    assert row["last_status"] == 200
    assert row["contact"] == f"sip:+15550000040@{outbound.sbc.ext_uri}"
    # The last grant (60 s) was taken, not the earlier 4 s.
    assert row["expires_in"] is not None
    assert SHORT_GRANT_S < row["expires_in"] <= ASKED_S, row


def test_outbound_registration_answers_a_401(outbound: OutboundRun) -> None:
    """reg-digest challenges: the SBC re-sends with Authorization (CSeq + 1,
    same Call-ID), SIPp's verifyauth accepts it, and the trunk is registered."""
    registrar = outbound.digest
    assert_ok(registrar)
    first, second = by_cseq(registrar.requests("REGISTER", "received"))
    assert answers(registrar, "REGISTER") == [(first.cseq_number, 401), (second.cseq_number, 200)]
    assert first.header("Authorization") is None
    assert second.call_id == first.call_id
    assert second.cseq_number == (first.cseq_number or 0) + 1  # RFC 3261 §22.2
    assert second.via_branch != first.via_branch
    value = second.header("Authorization")
    assert value is not None, second.raw
    params = digest_params(value)
    assert params["username"] == USERNAME
    assert params["realm"] == REALM
    assert params["nonce"] == outbound.nonce
    assert params["uri"] == second.request_uri
    assert params["response"] == md5_response(params, "REGISTER", PASSWORD)

    row = outbound.status[("trunk", "reg-digest")]
    assert row["state"] == "registered", row
    assert row["last_status"] == 200


def test_outbound_registration_with_a_wrong_password_fails_without_a_loop(
    outbound: OutboundRun,
) -> None:
    """reg-badauth rejects the credentials and challenges again: the SBC gives
    up (no third REGISTER while the registrar lingers) and reports failed."""
    registrar = outbound.badauth
    assert_ok(registrar)
    registers = by_cseq(registrar.requests("REGISTER", "received"))
    assert len(registers) == 2, registrar.describe()
    assert [status for _, status in answers(registrar, "REGISTER")] == [401, 401]
    assert registers[1].header("Authorization") is not None

    row = outbound.status[("trunk", "reg-badauth")]
    assert row["state"] == "failed", row
    assert row["last_status"] == 401
    assert row["expires_in"] is None
    # Credentials never reach the admin plane.
    assert PASSWORD not in str(outbound.status)


# --------------------------------------------------------------------------
# 2. registration relay
# --------------------------------------------------------------------------


def media_ports(ip: str, pairs: int = 4) -> str:
    """A small free media range of its own (``[even, odd]``): SBCs of runs in
    parallel would otherwise race for the default range's first ports."""
    base = free_ports(ip, 2 * pairs + 1)
    first = base + (base & 1)
    return f"[{first}, {first + 2 * pairs - 1}]"


def relay_interfaces_yaml(sbc: SbcProcess) -> str:
    """harness.write_policies' interfaces, with a relay on the external one."""
    relay = (
        f"registration: {{registrar: pbx, client_expires_s: {CLIENT_EXPIRES_S}, "
        f"upstream_expires_s: 60, keepalive_s: {KEEPALIVE_S}}}"
    )
    return (
        "interfaces:\n"
        f"  - {{name: external, address: {SBC_EXT_IP}, port: {sbc.ports.ext}, "
        f"transports: [udp, tcp], media_address: {SBC_EXT_IP}, "
        f"media_ports: {media_ports(SBC_EXT_IP)}, {relay}}}\n"
        f"  - {{name: internal, address: {SBC_INT_IP}, port: {sbc.ports.int_}, "
        f"transports: [udp, tcp], media_address: {SBC_INT_IP}, "
        f"media_ports: {media_ports(SBC_INT_IP)}}}\n"
    )


@pytest.fixture(scope="module")
def relay_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-relay"), admin_token=TOKEN, routes_yaml=RELAY_ROUTES
    )
    sbc.extra_files["interfaces.yaml"] = relay_interfaces_yaml(sbc)
    sbc.write_policies()
    yield from serving(sbc)


def relay_registrar(
    sbc: SbcProcess, tmp: Path, scenario: str = "uas_registrar_relay", **kw: Any
) -> Sipp:
    """The PBX's registrar, on the pbx trunk's address and port."""
    return Sipp(
        scenario,
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        workdir=tmp,
        name="registrar",
        timeout_s=20,
        **kw,
    )


def phone(sbc: SbcProcess, ip: str, user: str, tmp: Path) -> Sipp:
    """A NATed-looking phone registering ``user`` at the SBC's external interface."""
    return Sipp(
        "uac_phone_register",
        local_ip=ip,
        remote=sbc.ext_uri,
        service=user,
        duration_ms=PHONE_LINGER_MS,
        workdir=tmp,
        name=f"phone-{user}",
        timeout_s=20,
        extra=["-oocsf", str(scenario_path("ooc_phone"))],
    )


def pbx_call(sbc: SbcProcess, scenario: str, target_user: str, tmp: Path) -> Sipp:
    """The PBX calling ``target_user`` at the SBC's internal interface."""
    return Sipp(
        scenario,
        local_ip=PBX_IP,
        remote=sbc.int_uri,
        service=target_user,
        duration_ms=300,
        workdir=tmp,
        name=f"pbx-call-{target_user}",
        timeout_s=15,
    )


def registered_at_sbc(sbc: SbcProcess, user: str) -> Callable[[], bool]:
    def check() -> bool:
        row = registrations(sbc).get(("relayed", user))
        return row is not None and row["state"] == "registered"

    return check


def test_relay_a_nated_phone_registers_is_called_and_kept_alive(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    """The phone registers through the SBC (the registrar sees only the SBC),
    the PBX calls its user and the INVITE reaches the phone at the port it
    registered from with its Contact as Request-URI; keepalives arrive there;
    a refresh is answered by the SBC; the phone's removal goes upstream."""
    registrar = relay_registrar(relay_sbc, tmp_path)
    handset = phone(relay_sbc, PHONE_IP, "alice", tmp_path)
    caller = pbx_call(relay_sbc, "uac_basic", "alice", tmp_path)
    try:
        registrar.start()
        handset.start()
        wait_for(registered_at_sbc(relay_sbc, "alice"), "alice registered through the SBC")
        row = registrations(relay_sbc)[("relayed", "alice")]
        caller.start(wait_bind=False)
        pbx = caller.wait(25)
        ph = handset.wait(30)
        reg = registrar.wait(10)
    finally:
        stop_all([caller, handset, registrar])
    assert_ok(pbx, ph, reg)

    # The admin plane showed the phone where it really is, under its own Contact.
    assert row["source"] == f"udp:{PHONE_IP}:{handset.local_port}", row
    assert row["contact"] == f"sip:alice@{PRIVATE_CONTACT_HOST}:5060"

    # Phone side of the registration: 200s with its Contact and the short expiry.
    oks = [m for m in ph.responses("REGISTER", "received") if m.status == 200]
    first_ok = by_cseq(oks)[0]
    assert first_ok.contact_uri == f"sip:alice@{PRIVATE_CONTACT_HOST}:5060"
    assert int(param(first_ok.header("Contact"), "expires") or 0) == CLIENT_EXPIRES_S

    # Upstream: the SBC's binding and, at the end, its removal — the phone's
    # refresh in between was answered by the SBC (registration throttling).
    upstream = by_cseq(reg.requests("REGISTER", "received"))
    assert len(upstream) == 2, reg.describe()
    binding, removal = upstream
    assert uri_user(binding.header("To")) == "alice"
    assert binding.contact_uri is not None
    assert f"@{relay_sbc.int_uri}" in binding.contact_uri, binding.contact_uri
    assert binding.header("Expires") == "60"
    assert removal.call_id == binding.call_id
    assert removal.cseq_number == (binding.cseq_number or 0) + 1
    assert removal.contact_uri == binding.contact_uri
    assert removal.header("Expires") == "0"
    leaked = leaks(reg.received, [PRIVATE_CONTACT_HOST, PHONE_IP, "NATed phone"])
    assert not leaked, "the phone leaked to the registrar:\n" + "\n".join(leaked)

    # The call: the PBX got the phone's answer, the phone the INVITE at its
    # registering port (the only one it has) with Request-URI = its Contact.
    assert [s for s in pbx.statuses("INVITE") if s >= 200] == [200], pbx.describe()
    assert pbx.statuses("BYE") == [200]
    invite = by_cseq(ph.requests("INVITE", "received"))[0]
    assert invite.request_uri == f"sip:alice@{PRIVATE_CONTACT_HOST}:5060"
    # ACK and BYE went to where the phone is, not to the private Contact of its
    # 200; their Request-URI is still that Contact (the remote target, §12.2.1.1).
    ack = [m for m in ph.requests("ACK", "received") if m.call_id == invite.call_id]
    bye = [m for m in ph.requests("BYE", "received") if m.call_id == invite.call_id]
    assert ack, ph.describe()
    assert bye, ph.describe()
    assert bye[0].request_uri == f"sip:phone@{PRIVATE_CONTACT_HOST}:5060"
    leaked = leaks(ph.received, [PBX_IP, SBC_INT_IP])
    assert not leaked, "the PBX side leaked to the phone:\n" + "\n".join(leaked)
    leaked = leaks(pbx.received, [PRIVATE_CONTACT_HOST, PHONE_IP])
    assert not leaked, "the phone leaked to the PBX:\n" + "\n".join(leaked)

    # Keepalives: OPTIONS to the observed address and port, answered.
    keepalives = ph.requests("OPTIONS", "received")
    assert len(transactions(keepalives)) >= 2, ph.describe()
    for options in keepalives:
        assert options.request_uri == f"sip:{PHONE_IP}:{handset.local_port}"
    removed = registrations(relay_sbc).get(("relayed", "alice"))
    assert removed is None, removed


def test_relay_passes_the_registrars_challenge_to_the_phone(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    """The registrar authenticates the phone itself: its 401 reaches the phone,
    the phone's Authorization goes upstream untouched (SIPp's verifyauth
    accepts it) and the phone ends up registered through the SBC."""
    nonce = uuid.uuid4().hex
    registrar = relay_registrar(
        relay_sbc,
        tmp_path,
        "uas_registrar_digest",
        keys={"realm": REALM, "nonce": nonce, "username": "carol", "password": PASSWORD},
    )
    handset = Sipp(
        "uac_phone_register_auth",
        local_ip=PHONE3_IP,
        remote=relay_sbc.ext_uri,
        service="carol",
        workdir=tmp_path,
        name="phone-carol",
        timeout_s=15,
        extra=["-au", "carol", "-ap", PASSWORD],
    )
    try:
        registrar.start()
        ph = handset.start().wait(20)
        reg = registrar.wait(10)
    finally:
        stop_all([handset, registrar])
    assert_ok(ph, reg)

    challenge = [m for m in ph.responses("REGISTER", "received") if m.status == 401]
    assert challenge, ph.describe()
    www = challenge[0].header("WWW-Authenticate") or ""
    assert f'realm="{REALM}"' in www
    assert f'nonce="{nonce}"' in www
    assert [m.status for m in by_cseq(ph.responses("REGISTER", "received"))] == [401, 200]

    upstream = by_cseq(reg.requests("REGISTER", "received"))
    assert len(upstream) == 2, reg.describe()
    assert [status for _, status in answers(reg, "REGISTER")] == [401, 200]
    phone_auth = by_cseq(ph.requests("REGISTER", "sent"))[1].header("Authorization")
    assert phone_auth is not None
    assert upstream[1].header("Authorization") == phone_auth  # end to end, untouched
    assert upstream[1].call_id == upstream[0].call_id
    leaked = leaks(reg.received, [PRIVATE_CONTACT_HOST, PHONE3_IP])
    assert not leaked, "the phone leaked to the registrar:\n" + "\n".join(leaked)

    row = registrations(relay_sbc).get(("relayed", "carol"))
    assert row is not None
    assert row["state"] == "registered", row
    assert row["source"] == f"udp:{PHONE3_IP}:{handset.local_port}"


def test_relay_call_to_the_registered_contact_reaches_the_phone(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    """A registrar's location service retargets a call for the AOR to the
    Contact bound to it — here the SBC's own Contact for the phone. The SBC
    must map that Contact back to the phone, as it does the AOR user."""
    registrar = relay_registrar(relay_sbc, tmp_path)
    handset = phone(relay_sbc, PHONE2_IP, "bob", tmp_path)
    caller: Sipp | None = None
    try:
        registrar.start()
        handset.start()
        wait_for(registered_at_sbc(relay_sbc, "bob"), "bob registered through the SBC")
        wait_for(
            lambda: bool(registrar.result().requests("REGISTER", "received")),
            "the registrar's message log shows the REGISTER",
        )
        bound = by_cseq(registrar.result().requests("REGISTER", "received"))[0]
        sbc_contact_user = uri_user(bound.contact_uri)
        assert sbc_contact_user, bound.raw
        assert bound.contact_uri == f"sip:{sbc_contact_user}@{relay_sbc.int_uri}"
        # uac_basic's Request-URI is sip:[service]@[remote]: exactly that Contact.
        caller = pbx_call(relay_sbc, "uac_basic", sbc_contact_user, tmp_path)
        pbx = caller.start(wait_bind=False).wait(20)
        assert [s for s in pbx.statuses("INVITE") if s >= 200] == [200], pbx.describe()
        ph = handset.wait(30)
        reg = registrar.wait(10)
    finally:
        stop_all([s for s in (caller, handset, registrar) if s is not None])
    assert_ok(pbx, ph, reg)
    invite = by_cseq(ph.requests("INVITE", "received"))[0]
    assert invite.request_uri == f"sip:bob@{PRIVATE_CONTACT_HOST}:5060"


def test_relay_call_for_a_user_nobody_registered_gets_480(
    relay_sbc: SbcProcess, tmp_path: Path
) -> None:
    """A to_registered route with nobody registered under the user: 480."""
    caller = pbx_call(relay_sbc, "uac_failure", "nobody", tmp_path)
    try:
        pbx = caller.start(wait_bind=False).wait(20)
    finally:
        caller.stop()
    assert_ok(pbx)
    assert [s for s in pbx.statuses("INVITE") if s >= 200] == [480], pbx.describe()
