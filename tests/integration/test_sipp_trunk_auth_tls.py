"""Trunk connectivity with real peers: SIP over TLS both ways, and digest
authentication toward a carrier that challenges the SBC's calls.

Topology (loopback), one SBC for the module:

- external interface 127.0.0.1: UDP/TCP plus a TLS listener (the SBC's
  certificate from a test CA, no client certificate asked); callers over TLS
  are a small Python UA (tls_ua.py: Debian's SIPp has no TLS) on the
  carrier's address 127.0.0.10;
- internal interface 127.0.0.2: UDP/TCP plus a mutual-TLS listener
  (``require_client_cert``, ``cafile`` = the test CA); the PBX SIPp is on
  127.0.0.20 over UDP;
- TLS trunks ``carrier-tls`` (127.0.0.30, ``server_name: carrier.example``)
  and ``carrier-badname`` (127.0.0.31, a ``server_name`` its certificate does
  not carry), each a Python TLS UAS in the test;
- digest trunks (SIPp carriers over UDP, ``auth`` with the password from an
  environment variable): ``carrier-407`` and ``carrier-401`` know the right
  password, ``carrier-badauth`` a wrong one.

The PBX calls out by number: 7001 -> carrier-tls, 7002 -> carrier-badname,
7003 -> carrier-407, 7004 -> carrier-401, 7005 -> carrier-badauth.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    STRANGER_IP,
    SbcProcess,
    SipMessage,
    Sipp,
    SippResult,
    TlsListener,
    TrunkDef,
    free_port,
    leaks,
    options_request,
    run_pair,
    serving,
)
from tls_ua import SipStream, TlsCaller, TlsCarrier, open_tls

from sbc import tlsdev

pytestmark = pytest.mark.integration

CARRIER_TLS_IP = "127.0.0.30"
CARRIER_BADNAME_IP = "127.0.0.31"
CARRIER_407_IP = "127.0.0.40"
CARRIER_401_IP = "127.0.0.41"
CARRIER_BADAUTH_IP = "127.0.0.42"
CARRIER_NAME = "carrier.example"

REALM = "carrier.example"
USERNAME = "sbc-trunk"
PASSWORD = "s3cret-of-the-trunk"
PASSWORD_ENV = "SBC_IT_CARRIER_PASSWORD"
WRONG_PASSWORD_ENV = "SBC_IT_CARRIER_WRONG_PASSWORD"

#: A private media range per interface, so parallel SBCs do not compete
#: (a port taken elsewhere is passed over: see the test at the end).
MEDIA_PAIRS = 16

ROUTES = """\
routes:
  - {name: to-tls, from_trunk: pbx, prefix: "7001", to: [carrier-tls]}
  - {name: to-badname, from_trunk: pbx, prefix: "7002", to: [carrier-badname]}
  - {name: to-407, from_trunk: pbx, prefix: "7003", to: [carrier-407]}
  - {name: to-401, from_trunk: pbx, prefix: "7004", to: [carrier-401]}
  - {name: to-badauth, from_trunk: pbx, prefix: "7005", to: [carrier-badauth]}
  - {name: carrier-to-pbx, from_trunk: carrier, to: [pbx]}
  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}
"""


# --------------------------------------------------------------------------
# certificates and the SBC
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA: trusted by the SBC and by every peer here
    sbc_external: Pair  # 127.0.0.1
    sbc_internal: Pair  # 127.0.0.2
    carrier: Pair  # carrier.example (the TLS carriers' server certificate)
    pbx_client: Pair  # a client certificate from the test CA
    stranger_client: Pair  # a client certificate from a CA nobody trusts


def _write(directory: Path, stem: str, pair: tuple[bytes, bytes]) -> Pair:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.write_bytes(pair[0])
    key.write_bytes(pair[1])
    key.chmod(0o600)
    return Pair(cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = tlsdev.make_ca("sbc test CA"), tlsdev.make_ca("nobody's CA")
    return Pki(
        ca=_write(directory, "ca", ca).cert,
        sbc_external=_write(directory, "sbc-ext", tlsdev.make_cert(ca, "sbc", [SBC_EXT_IP])),
        sbc_internal=_write(directory, "sbc-int", tlsdev.make_cert(ca, "sbc", [SBC_INT_IP])),
        carrier=_write(directory, "carrier", tlsdev.make_cert(ca, "carrier", [CARRIER_NAME])),
        pbx_client=_write(directory, "pbx", tlsdev.make_cert(ca, "pbx", [PBX_IP], client=True)),
        stranger_client=_write(
            directory, "stranger", tlsdev.make_cert(other, "pbx", [PBX_IP], client=True)
        ),
    )


def _tls_trunk(name: str, address: str, ca: Path, server_name: str) -> TrunkDef:
    return TrunkDef(
        name,
        "external",
        address,
        transport="tls",
        extra=f"tls: {{cafile: {ca}, server_name: {server_name}}}",
    )


def _auth_trunk(name: str, address: str, env: str) -> TrunkDef:
    return TrunkDef(
        name,
        "external",
        address,
        transport="udp",
        extra=f"auth: {{username: {USERNAME}, password: {{env: {env}}}}}",
    )


@pytest.fixture(scope="module")
def tls_sbc(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-tls"),
        routes_yaml=ROUTES,
        media_pairs=MEDIA_PAIRS,
        extra_trunks=[
            _tls_trunk("carrier-tls", CARRIER_TLS_IP, pki.ca, CARRIER_NAME),
            _tls_trunk("carrier-badname", CARRIER_BADNAME_IP, pki.ca, "wrong.example"),
            _auth_trunk("carrier-407", CARRIER_407_IP, PASSWORD_ENV),
            _auth_trunk("carrier-401", CARRIER_401_IP, PASSWORD_ENV),
            _auth_trunk("carrier-badauth", CARRIER_BADAUTH_IP, WRONG_PASSWORD_ENV),
        ],
        tls={
            "external": TlsListener(pki.sbc_external.cert, pki.sbc_external.key),
            "internal": TlsListener(
                pki.sbc_internal.cert,
                pki.sbc_internal.key,
                cafile=pki.ca,
                require_client_cert=True,
            ),
        },
    )
    yield from serving(sbc, {PASSWORD_ENV: PASSWORD, WRONG_PASSWORD_ENV: "not-" + PASSWORD})


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def client_context(pki: Pki, cert: Pair | None = None) -> ssl.SSLContext:
    """A peer's client context: verifies the SBC against the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.ca)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    return context


def carrier_context(pki: Pki, sni: list[str]) -> ssl.SSLContext:
    """A TLS carrier's server context; records the SNI names it is asked for."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.carrier.cert, pki.carrier.key)

    def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name or "")

    context.sni_callback = remember
    return context


def pbx_callee(sbc: SbcProcess, scenario: str, tmp: Path, **kw: Any) -> Sipp:
    ip, port = sbc.trunk("pbx")
    kw.setdefault("duration_ms", 300)
    return Sipp(scenario, local_ip=ip, local_port=port, workdir=tmp, name="pbx", timeout_s=20, **kw)


def pbx_call(sbc: SbcProcess, scenario: str, number: str, tmp: Path) -> Sipp:
    """A SIPp UAC on the PBX calling ``number`` through the SBC's internal interface."""
    return Sipp(
        scenario,
        local_ip=PBX_IP,
        remote=sbc.int_uri,
        service=number,
        duration_ms=300,
        timeout_s=20,
        workdir=tmp,
        name=f"pbx-{number}",
    )


def carrier_uas(sbc: SbcProcess, trunk: str, scenario: str, tmp: Path, **keys: str) -> Sipp:
    ip, port = sbc.trunk(trunk)
    return Sipp(
        scenario,
        local_ip=ip,
        local_port=port,
        keys=keys,
        duration_ms=500,
        timeout_s=20,
        workdir=tmp,
        name=trunk,
    )


def statuses(messages: list[SipMessage]) -> list[int]:
    return [m.status for m in messages if m.status is not None]


def finals(res: SippResult) -> list[int]:
    return [s for s in res.statuses("INVITE") if s >= 200]


def assert_ok(*results: SippResult) -> None:
    for res in results:
        assert res.ok, "\n".join(r.describe() for r in results)


def first(messages: list[SipMessage], what: str) -> SipMessage:
    assert messages, f"no {what}"
    return messages[0]


def _wait(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition()`` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def tls_failures(sbc: SbcProcess, host: str, interface: str) -> list[dict[str, Any]]:
    """The SBC's ``tls_handshake_failed`` events for ``host`` (logged once per host)."""
    return [
        e
        for e in sbc.log_events()
        if e.get("event") == "tls_handshake_failed"
        and e.get("interface") == interface
        and f"host='{host}'" in str(e.get("peer"))
    ]


# --------------------------------------------------------------------------
# 1. a call from a TLS caller
# --------------------------------------------------------------------------


def place_tls_call(sbc: SbcProcess, pki: Pki) -> tuple[TlsCaller, list[SipMessage]]:
    """Connect from the carrier's address to the external TLS port, verifying
    the SBC's certificate, and send the INVITE; return the responses."""
    target = sbc.tls_address("external")
    stream = open_tls(target, client_context(pki), local_ip=CARRIER_IP)
    caller = TlsCaller(stream, target, "4930100")
    try:
        return caller, caller.invite(media_port=free_port(CARRIER_IP, tcp=False))
    except BaseException:
        stream.close()
        raise


def test_tls_caller_call_end_to_end(tls_sbc: SbcProcess, pki: Pki, tmp_path: Path) -> None:
    """INVITE/ACK/BYE over TLS from the caller, UDP to the PBX SIPp."""
    tls_port = tls_sbc.tls_address("external")[1]
    pbx = pbx_callee(tls_sbc, "uas_basic", tmp_path).start()
    try:
        caller, responses = place_tls_call(tls_sbc, pki)
        try:
            assert statuses(responses)[-1:] == [200], [m.start_line for m in responses]
            caller.ack()
            pbx_got_ack = _wait(lambda: pbx.result().requests("ACK", "received"))
            bye = caller.bye()
        finally:
            caller.stream.close()
        callee = pbx.wait()
    finally:
        pbx.stop()
    assert_ok(callee)
    assert pbx_got_ack, callee.describe()
    assert {100, 180} <= set(statuses(responses)), [m.start_line for m in responses]
    assert statuses(bye)[-1:] == [200], [m.start_line for m in bye]
    for method in ("INVITE", "ACK", "BYE"):
        assert len(callee.requests(method, "received")) == 1, callee.describe()

    # The SBC's dialog with the caller lives on its TLS port (RFC 3261 §26.2.1).
    ok = responses[-1]
    assert ok.contact_uri is not None
    own_tls = rf"sip:{re.escape(SBC_EXT_IP)}:{tls_port};transport=tls"
    assert re.fullmatch(own_tls, ok.contact_uri, re.I), ok.contact_uri
    for response in (*responses, *bye):  # our own Via, answered on the TLS connection
        via = response.header("Via") or ""
        assert via.upper().startswith("SIP/2.0/TLS "), via
    # The PBX leg is plain UDP from the internal interface; the caller stays hidden.
    b_invite = first(callee.requests("INVITE", "received"), "INVITE at the PBX")
    assert (b_invite.header("Via") or "").upper().startswith(f"SIP/2.0/UDP {SBC_INT_IP}:")
    assert not leaks(callee.received, [CARRIER_IP, SBC_EXT_IP, caller.call_id])


def test_callee_bye_reaches_tls_caller_on_its_connection(
    tls_sbc: SbcProcess, pki: Pki, tmp_path: Path
) -> None:
    """The PBX hangs up: the SBC's BYE reaches the caller over the caller's own
    TLS connection, with a Via naming the SBC's TLS port."""
    tls_port = tls_sbc.tls_address("external")[1]
    pbx = pbx_callee(tls_sbc, "uas_callee_bye", tmp_path).start()
    try:
        caller, responses = place_tls_call(tls_sbc, pki)
        try:
            assert statuses(responses)[-1:] == [200], [m.start_line for m in responses]
            caller.ack()
            requests = caller.answer_requests(timeout=10)
        finally:
            caller.stream.close()
        callee = pbx.wait()
    finally:
        pbx.stop()
    assert_ok(callee)
    assert callee.statuses("BYE") == [200], callee.describe()
    bye = first([m for m in requests if m.method == "BYE"], "BYE at the TLS caller")
    via = bye.header("Via") or ""
    assert re.match(rf"SIP/2\.0/TLS {re.escape(SBC_EXT_IP)}:{tls_port}\b", via, re.I), via
    assert bye.call_id == caller.call_id


# --------------------------------------------------------------------------
# 2. mutual TLS on the internal interface
# --------------------------------------------------------------------------


def options_over_tls(sbc: SbcProcess, context: ssl.SSLContext, local_ip: str) -> int | str:
    """An OPTIONS over TLS to the internal interface: its final status, or how
    the connection failed ("handshake: ...", "closed", "no answer")."""
    target = sbc.tls_address("internal")
    try:
        stream = open_tls(target, context, local_ip=local_ip)
    except (ssl.SSLError, OSError) as exc:
        return f"handshake: {exc}"
    try:
        ip, port = stream.local
        target_uri = f"{target[0]}:{target[1]}"
        stream.send(options_request(target_uri, ip, port, transport="TLS").decode())
        return _final_status(stream)
    except (ssl.SSLError, OSError) as exc:  # TLS 1.3: the refusal comes after our Finished
        return f"handshake: {exc}"
    finally:
        stream.close()


def _final_status(stream: SipStream) -> int | str:
    for message in stream.receive_until(200):
        if (message.status or 0) >= 200:
            return message.status or 0
    return "closed" if stream.closed else "no answer"


def assert_refused(sbc: SbcProcess, outcome: int | str) -> None:
    """No SIP answer, and the SBC closed the connection (a silent one could be
    anything); the refusal is the TLS layer's (logged once per source host)."""
    assert isinstance(outcome, str), f"answered {outcome} over a refused connection"
    assert outcome != "no answer", "the SBC must close the connection, not stay silent"
    # (the SBC may log it just after closing: asyncio aborts the transport first)
    logged = _wait(lambda: tls_failures(sbc, PBX_IP, "internal"))
    assert logged, "no tls_handshake_failed logged"


def test_mutual_tls_refuses_a_client_without_certificate(tls_sbc: SbcProcess, pki: Pki) -> None:
    """From the PBX's own address: only the missing certificate is wrong."""
    assert_refused(tls_sbc, options_over_tls(tls_sbc, client_context(pki), PBX_IP))


def test_mutual_tls_refuses_a_certificate_from_another_ca(tls_sbc: SbcProcess, pki: Pki) -> None:
    context = client_context(pki, pki.stranger_client)  # same names, untrusted issuer
    assert_refused(tls_sbc, options_over_tls(tls_sbc, context, PBX_IP))


def test_mutual_tls_accepts_a_good_certificate(tls_sbc: SbcProcess, pki: Pki) -> None:
    """The PBX's address with a good certificate is the pbx trunk: OPTIONS 200.
    The same certificate from an address that is no trunk's gets 403: TLS
    authenticates the connection, the policy still decides who is a peer."""
    good = client_context(pki, pki.pbx_client)
    assert options_over_tls(tls_sbc, good, PBX_IP) == 200
    assert options_over_tls(tls_sbc, good, STRANGER_IP) == 403


# --------------------------------------------------------------------------
# 3. outbound TLS toward a carrier
# --------------------------------------------------------------------------


def test_outbound_call_to_tls_trunk(tls_sbc: SbcProcess, pki: Pki, tmp_path: Path) -> None:
    """The PBX calls 7001: the SBC opens TLS to carrier-tls, checks its
    certificate for carrier.example (sent as SNI), and the call completes."""
    sni: list[str] = []
    tls_port = tls_sbc.tls_address("external")[1]
    with TlsCarrier(tls_sbc.trunk("carrier-tls"), carrier_context(pki, sni)) as carrier:
        uac = pbx_call(tls_sbc, "uac_basic", "7001", tmp_path).start(wait_bind=False).wait()
        assert carrier.wait_for("BYE"), [str(m) for m in carrier.messages]
    assert_ok(uac)
    assert finals(uac) == [200], uac.describe()
    assert uac.statuses("BYE") == [200]
    assert not carrier.handshake_errors
    assert sni == [CARRIER_NAME]
    assert [m.method for m in carrier.received()] == ["INVITE", "ACK", "BYE"]
    invite = carrier.received("INVITE")[0]
    via = invite.header("Via") or ""
    assert re.match(rf"SIP/2\.0/TLS {re.escape(SBC_EXT_IP)}:{tls_port}\b", via, re.I), via
    assert invite.contact_uri is not None
    assert f"{SBC_EXT_IP}:{tls_port}" in invite.contact_uri, invite.contact_uri
    assert not leaks(carrier.received(), [PBX_IP, SBC_INT_IP])


def test_outbound_tls_with_wrong_server_name_fails_fast(
    tls_sbc: SbcProcess, pki: Pki, tmp_path: Path
) -> None:
    """carrier-badname's certificate does not name wrong.example: the SBC drops
    the handshake, sends no SIP, and the caller gets 503 at once (a transport
    error, RFC 3261 §17.1.4), not after Timer B."""
    sni: list[str] = []
    address = tls_sbc.trunk("carrier-badname")
    with TlsCarrier(address, carrier_context(pki, sni)) as carrier:
        uac = pbx_call(tls_sbc, "uac_failure", "7002", tmp_path).start(wait_bind=False).wait()
    assert_ok(uac)
    finals_seen = [m.start_line for m in uac.received if (m.status or 0) >= 200]
    assert finals_seen == ["SIP/2.0 503 Service Unavailable"], uac.describe()
    assert not carrier.received(), [str(m) for m in carrier.messages]
    assert carrier.handshake_errors, "the SBC never tried the TLS carrier"
    assert sni[:1] == ["wrong.example"]
    assert _wait(lambda: tls_failures(tls_sbc, address[0], "external"))
    reasons = [str(e.get("reason")) for e in tls_failures(tls_sbc, address[0], "external")]
    assert any("wrong.example" in reason for reason in reasons), reasons


# --------------------------------------------------------------------------
# 4. digest authentication toward a carrier (SIPp)
# --------------------------------------------------------------------------


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


def test_digest_407_answered_with_correct_credentials(tls_sbc: SbcProcess, tmp_path: Path) -> None:
    nonce = uuid.uuid4().hex
    uas = carrier_uas(tls_sbc, "carrier-407", "uas_digest_407", tmp_path, realm=REALM, nonce=nonce)
    carrier, uac = run_pair(uas, pbx_call(tls_sbc, "uac_basic", "7003", tmp_path))
    assert_ok(uac, carrier)
    assert finals(uac) == [200], uac.describe()
    assert 407 not in uac.statuses("INVITE"), "the caller must never see the trunk's challenge"
    assert uac.statuses("BYE") == [200]

    invites = {m.cseq_number: m for m in carrier.requests("INVITE", "received")}
    first_try, second_try = invites.values()
    assert second_try.call_id == first_try.call_id
    assert second_try.cseq_number == (first_try.cseq_number or 0) + 1  # RFC 3261 §22.2
    assert second_try.via_branch != first_try.via_branch
    value = second_try.header("Proxy-Authorization")
    assert value is not None, second_try.raw
    params = digest_params(value)
    assert params["username"] == USERNAME
    assert params["realm"] == REALM
    assert params["nonce"] == nonce
    assert params["uri"] == second_try.request_uri
    assert params["qop"] == "auth"
    assert params.get("algorithm", "MD5").upper() == "MD5"
    assert params["response"] == md5_response(params, "INVITE", PASSWORD)
    # The ACK of the 2xx carries the same credentials (RFC 3261 §22.1).
    acks = [m for m in carrier.requests("ACK", "received") if m.cseq_number == 2]
    assert [m.header("Proxy-Authorization") for m in acks][:1] == [value]


def test_digest_401_checked_by_sipp_verifyauth(tls_sbc: SbcProcess, tmp_path: Path) -> None:
    """SIPp itself checks the Authorization answering its 401 and lets the call in."""
    uas = carrier_uas(
        tls_sbc,
        "carrier-401",
        "uas_digest_401",
        tmp_path,
        realm=REALM,
        nonce=uuid.uuid4().hex,
        username=USERNAME,
        password=PASSWORD,
    )
    carrier, uac = run_pair(uas, pbx_call(tls_sbc, "uac_basic", "7004", tmp_path))
    assert_ok(uac, carrier)
    assert finals(uac) == [200], uac.describe()
    challenges = {m.cseq_number: m.status for m in carrier.sent if m.cseq_method == "INVITE"}
    assert list(challenges.values()) == [401, 200]
    assert carrier.requests("BYE", "received")


def test_digest_wrong_password_fails_without_a_loop(tls_sbc: SbcProcess, tmp_path: Path) -> None:
    """carrier-badauth's password is wrong: verifyauth refuses it, the carrier
    challenges again, and the SBC gives up: 403 to the caller, two INVITEs."""
    uas = carrier_uas(
        tls_sbc,
        "carrier-badauth",
        "uas_digest_401",
        tmp_path,
        realm=REALM,
        nonce=uuid.uuid4().hex,
        username=USERNAME,
        password=PASSWORD,
    )
    carrier, uac = run_pair(uas, pbx_call(tls_sbc, "uac_failure", "7005", tmp_path))
    assert_ok(uac, carrier)
    finals_seen = [m.start_line for m in uac.received if (m.status or 0) >= 200]
    assert finals_seen == ["SIP/2.0 403 Trunk Authentication Failed"], uac.describe()
    # (counted by CSeq: a retransmission over UDP is the same INVITE)
    invites = {m.cseq_number: m for m in carrier.requests("INVITE", "received")}
    assert len(invites) == 2, carrier.describe()
    assert list(invites.values())[1].header("Authorization") is not None
    challenges = {m.cseq_number: m.status for m in carrier.sent if m.cseq_method == "INVITE"}
    assert list(challenges.values()) == [401, 401]


# --------------------------------------------------------------------------
# found along the way
# --------------------------------------------------------------------------


def test_call_survives_a_media_port_taken_by_another_process(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Another program binds the first RTP port of the external media range.
    The SBC's pool hands that pair to the next call anyway; the relay's bind
    fails and the call is answered 503. Two pairs exist, one of them free."""
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-media-squatter"),
        media_pairs=2,
        extra_sbc_yaml="calls: {shutdown_grace_s: 0}\n",  # the failed call's CANCEL hangs
    )
    first_rtp_port = sbc.media_ports["external"][0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((SBC_EXT_IP, first_rtp_port))
        try:
            sbc.start()
        except RuntimeError as exc:
            pytest.fail(f"SBC did not start: {exc}", pytrace=False)
        pbx = pbx_callee(sbc, "uas_basic", tmp_path)
        caller = Sipp(
            "uac_answered_or_refused",
            local_ip=CARRIER_IP,
            remote=sbc.ext_uri,
            service="4930200",
            duration_ms=300,
            timeout_s=20,
            workdir=tmp_path,
            name="carrier",
        )
        try:
            pbx.start()
            uac = caller.start(wait_bind=False).wait()
            if finals(uac) == [200]:
                pbx.wait()
        finally:
            caller.stop()
            pbx.stop()  # a refused call leaves the PBX waiting for nothing
            sbc.stop()
    assert finals(uac) == [200], [m.start_line for m in uac.received]
