"""Screening and admission as the far ends see them: limits answered before any
B-leg exists, scanners and floods met with silence, trunks never starved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peers import POLICIES, Net, policy_copy, sdp

from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.policy import load_policy
from sbc.sip.message import parse_message
from sbc.sip.target import Target

STRANGER = Target("external", "udp", "198.51.100.7", 5060)


def make_net(
    tmp_path: Path,
    *,
    trunks_sed: tuple[str, str] | None = None,
    extra_trunks: str = "",
    **files: str,
) -> Net:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    trunks = (directory / "trunks.yaml").read_text()
    if trunks_sed is not None:
        trunks = trunks.replace(*trunks_sed, 1)
    (directory / "trunks.yaml").write_text(trunks + extra_trunks)
    return Net(load_policy(directory))


def stranger_options(net: Net, n: int, user_agent: str = "softphone 1.0") -> list[bytes]:
    data = (
        f"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-s{n};rport\r\n"
        f"From: <sip:x@198.51.100.7>;tag=s{n}\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: stranger-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"User-Agent: {user_agent}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    return [t.data for t in net.deliver_from(STRANGER, data)]


def test_calls_over_a_trunk_limit_get_503_and_no_b_leg(tmp_path: Path) -> None:
    net = make_net(tmp_path, trunks_sed=("max_calls: 0", "max_calls: 2"))
    first = net.carrier.invite("1")
    net.carrier.invite("2")
    net.carrier.invite("3")
    assert len(net.pbx.requests("INVITE")) == 2
    refused = net.carrier.take_response(503)
    assert refused.reason == "Trunk Limit Reached"
    assert refused.headers.get("Retry-After") == "5"
    assert net.core.admission.active("trunk:carrier") == 2
    # One call ends (the callee refuses it): room for the next.
    invite = net.pbx.requests("INVITE")[0]
    assert invite.call_id != first.call_id
    net.pbx.respond(invite, 486)
    net.carrier.take_response(486)
    assert net.core.admission.active("trunk:carrier") == 1
    net.carrier.invite("4")
    assert len(net.pbx.requests("INVITE")) == 3
    net.settle()


def test_a_full_egress_trunk_is_passed_over(tmp_path: Path) -> None:
    routes = "routes:\n  - name: out\n    from_trunk: pbx\n    to: [carrier, carrier2]\n"
    extra = "  - name: carrier2\n    interface: external\n    address: 127.0.0.11\n"
    net = make_net(
        tmp_path, routes=routes, trunks_sed=("max_calls: 0", "max_calls: 1"), extra_trunks=extra
    )
    carrier2 = net.add_peer("carrier2", "127.0.0.11")
    net.pbx.invite("1")
    net.pbx.invite("2")
    assert len(net.carrier.requests("INVITE")) == 1
    assert len(carrier2.requests("INVITE")) == 1


def test_answered_calls_release_their_scopes_once(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    a = net.carrier.invite("1")
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp(net.pbx.host))
    net.carrier.ack(a)
    assert net.core.admission.active("global") == 1
    assert net.core.admission.active("trunk:carrier") == 1  # ingress
    assert net.core.admission.active("trunk:pbx") == 1  # egress
    net.carrier.request(a, "BYE")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    net.settle()
    for scope in ("global", "interface:external", "trunk:carrier", "trunk:pbx"):
        assert net.core.admission.active(scope) == 0, scope  # released, and once only


def test_a_scanner_is_banned_and_then_hears_nothing(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    assert stranger_options(net, 1, "friendly-scanner") == []
    answers = stranger_options(net, 2)  # a different User-Agent changes nothing
    assert answers == []
    assert [b.source for b in net.core.guard.bans(net.now)] == ["198.51.100.7"]
    # A trunk that happens to send the same User-Agent is never banned.
    net.carrier.invite("1", headers=[("User-Agent", "friendly-scanner")])
    assert net.pbx.requests("INVITE")


def test_a_flooding_stranger_is_limited_then_banned_while_calls_go_on(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    statuses = []
    for n in range(200):  # all at one instant: far above 10/s, burst 20
        for data in stranger_options(net, n):
            message = parse_message(data)
            statuses.append(message.status)  # type: ignore[union-attr]
    assert statuses[:20] == [403] * 20  # within the burst: the usual answer (not a trunk)
    limited = [s for s in statuses[20:] if s == 503]
    assert limited  # then 503 + Retry-After ...
    assert len(statuses) < 200  # ... until the strikes ban it: silence
    assert net.core.guard.bans(net.now)
    assert len(net.core.layer) == 0  # no state kept for any of it
    net.carrier.invite("1")  # the carrier is untouched
    assert net.pbx.requests("INVITE")


def test_acl_denied_sources_get_silence(tmp_path: Path) -> None:
    net = make_net(tmp_path, security="acl:\n  external:\n    deny: [198.51.100.0/24]\n")
    assert stranger_options(net, 1) == []
    assert net.core.guard.stats["acl_denied"] == 1


def test_reload_keeps_counts_and_bans(tmp_path: Path) -> None:
    net = make_net(tmp_path, trunks_sed=("max_calls: 0", "max_calls: 1"))
    stranger_options(net, 1, "sipvicious")
    net.carrier.invite("1")
    net.core.set_policy(load_policy(tmp_path / "policies"), net.now)
    net.carrier.invite("2")
    assert len(net.pbx.requests("INVITE")) == 1  # the first call still counts
    assert net.core.guard.bans(net.now)


def test_a_retransmitted_invite_is_not_charged_again(tmp_path: Path) -> None:
    security = "rate_limits:\n  per_trunk:\n    carrier: {INVITE: {rate: 0.01, burst: 1}}\n"
    net = make_net(tmp_path, security=security)
    a = net.carrier.invite("1")
    net.pbx.respond(net.pbx.take_request("INVITE"), 480)
    assert net.carrier.take_response(480)
    assert a.invite is not None
    net.carrier.resend(a.invite)  # its 480 was lost, say
    assert net.carrier.take_response(480)  # the transaction answers again: no 503
    assert not net.carrier.responses(503)


# --- forged traffic from a trunk's address ------------------------------------------

PBX_AUTH = (
    "    require_auth:\n      realm: sbc.example\n      users: {pbx1: {env: SBC_TEST_PBX_SECRET}}\n"
)
BOGUS_AUTH = (
    'Digest username="pbx1", realm="sbc.example", nonce="forged", uri="sip:1@127.0.0.2",'
    ' response="00000000000000000000000000000000", algorithm=SHA-256'
)


def test_forged_auth_failures_from_a_trunk_address_never_ban_the_trunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve spoofed INVITEs with a bogus Authorization "from" the PBX's address
    (bans.auth_failures is 10): counted and alerted on, but the PBX's own
    authenticated call still goes through."""
    monkeypatch.setenv("SBC_TEST_PBX_SECRET", "pbx-pass")
    net = Net(load_policy(policy_copy(tmp_path, pbx_lines=PBX_AUTH)))
    spoofer = Target("internal", "udp", net.pbx.host, 5999)  # the PBX's IP, any port
    for n in range(12):
        forged = net.pbx.invite(f"66{n}", headers=[("Authorization", BOGUS_AUTH)], send=False)
        assert forged.invite is not None
        net.deliver_from(spoofer, forged.invite.serialize())
    assert net.core.guard.bans(net.now) == []
    assert net.core.guard.auth_failures == {"pbx": 12}
    assert net.core.guard.auth_alerts == {"pbx": 1}
    net.pbx.clear()  # the 401s answering the forgeries went to the PBX's address
    # The real PBX: challenged, answers, and its call crosses.
    dlg = net.pbx.invite("5551000")
    challenge = net.pbx.take_response(401)
    assert dlg.invite is not None
    retry = dlg.invite.copy()
    retry.headers.set("CSeq", "2 INVITE")
    retry.headers.set("Via", (dlg.invite.headers.get("Via") or "").replace("z9hG4bK", "z9hG4bKx"))
    assert ClientAuth(DigestCredentials("pbx1", "pbx-pass")).authorize(retry, challenge)
    net.deliver(net.pbx, retry.serialize())
    assert net.carrier.take_request("INVITE")


# --- before parsing ----------------------------------------------------------------

GARBAGE = (
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the UDP port
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",  # a request line, no usable headers
    b"\xff" * 64,
)


class ParseCounter:
    """Wraps the core's parser to count the datagrams it really parsed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import sbc.b2bua.core as core_module

        self.calls = 0
        real = core_module.parse_message

        def counting(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(core_module, "parse_message", counting)


def test_a_stranger_over_its_limit_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    security = (
        "rate_limits:\n  per_source:\n    OPTIONS: {rate: 1, burst: 3}\n"
        "limited: {action: drop}\nbans: {strikes: null}\n"
    )
    net = make_net(tmp_path, security=security)
    parsed = ParseCounter(monkeypatch)
    answers = [stranger_options(net, n) for n in range(50)]  # one instant: 3 pass
    assert sum(1 for a in answers if a) == 3
    assert parsed.calls == 3  # the other 47 were refused unparsed
    assert net.core.guard.stats["limited"] == 47


def test_garbage_is_a_strike_and_bans_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_net(tmp_path, security="bans: {strikes: 8, window_s: 60}\n")
    assert stranger_options(net, 0) != []  # a stranger: answered (403)
    for n in range(8):
        net.deliver_from(STRANGER, GARBAGE[n % len(GARBAGE)])
    assert [(b.source, b.reason) for b in net.core.guard.bans(net.now)] == [
        ("198.51.100.7", "malformed")
    ]
    parsed = ParseCounter(monkeypatch)
    assert stranger_options(net, 1) == []  # its valid OPTIONS now goes unanswered
    for data in GARBAGE * 100:
        assert net.deliver_from(STRANGER, data) == []
    assert parsed.calls == 0  # banned: dropped before parsing
    net.carrier.invite("1")  # the carrier is untouched
    assert net.pbx.requests("INVITE")


def test_garbage_from_a_trunk_address_never_bans_the_trunk(tmp_path: Path) -> None:
    net = make_net(tmp_path, security="bans: {strikes: 3, window_s: 60}\n")
    spoofer = Target("external", "udp", net.carrier.host, 6000)
    for n in range(100):
        net.deliver_from(spoofer, GARBAGE[n % len(GARBAGE)])
    assert net.core.guard.bans(net.now) == []
    net.carrier.invite("1")
    assert net.pbx.requests("INVITE")


def test_a_stranger_over_its_limit_still_hears_503_then_silence(tmp_path: Path) -> None:
    """With the default ``limited: reject`` a refused request is parsed to be
    answered (503 + Retry-After), until its strikes ban it."""
    security = "rate_limits:\n  per_source:\n    OPTIONS: {rate: 1, burst: 2}\nbans: {strikes: 3}\n"
    net = make_net(tmp_path, security=security)
    statuses = []
    for n in range(10):
        statuses += [parse_message(d).status for d in stranger_options(net, n)]  # type: ignore[union-attr]
    assert statuses == [403, 403, 503, 503]
    assert [b.reason for b in net.core.guard.bans(net.now)] == ["rate"]


# --- standing: a forged scanner User-Agent must not cut a call ------------------


def test_a_forged_scanner_agent_from_a_callee_node_does_not_cut_its_call(tmp_path: Path) -> None:
    """The PBX answers from a second node (127.0.0.21, no trunk's address), which
    then sends the BYE. A spoofed scanner User-Agent from that node while the
    call is up must not ban it: its BYE still reaches the carrier."""
    net = make_net(tmp_path)
    node = net.add_peer("pbx2", "127.0.0.21", "internal")
    a = net.carrier.invite("1")
    invite = net.pbx.take_request("INVITE")
    node.respond(invite, 200, body=sdp(node.host))
    net.carrier.take_response(200)
    net.carrier.ack(a)
    forged = Target("internal", "udp", node.host, 5999)
    scan = (
        b"OPTIONS sip:127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.21:5999;branch=z9hG4bK-scan\r\n"
        b"From: <sip:100@127.0.0.21>;tag=scan\r\nTo: <sip:100@127.0.0.2>\r\nCall-ID: scan-1\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: friendly-scanner\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    net.deliver_from(forged, scan)
    assert net.core.guard.bans(net.now) == []
    assert net.core.guard.stats["scanners_spared"] == 1
    node.request(node.dialog_of(invite), "BYE")
    assert net.carrier.take_request("BYE")
    net.settle()
    # The call is over: the node has no standing left.
    net.deliver_from(forged, scan.replace(b"scan-1", b"scan-2"))
    assert [b.source for b in net.core.guard.bans(net.now)] == ["127.0.0.21"]


def test_a_forged_scanner_agent_from_a_registered_phone_does_not_ban_it(tmp_path: Path) -> None:
    """A phone registered through the relay: one spoofed datagram with a scanner
    User-Agent from its address must not silence it (its answers still cross)."""
    from test_registration_relay import NAT_PORT, PHONE_HOST, register
    from test_registration_relay import make_net as relay_net

    net, phone = relay_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    contact = upstream.headers.get("Contact") or ""
    net.carrier.respond(upstream, 200, headers=[("Contact", f"{contact};expires=3600")])
    phone.take_response(200)
    forged = Target("external", "udp", PHONE_HOST, NAT_PORT + 1)
    scan = (
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.30:5999;branch=z9hG4bK-sc\r\n"
        b"From: <sip:100@127.0.0.30>;tag=scan\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: scan-1\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nUser-Agent: sipvicious\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    net.deliver_from(forged, scan)
    assert net.core.guard.bans(net.now) == []
    assert net.core.guard.stats["scanners_spared"] == 1
    net.pbx.invite("alice")
    invite = phone.take_request("INVITE")
    phone.respond(invite, 200, body=sdp(phone.host))
    assert net.pbx.take_response(200)


def test_a_reload_that_makes_a_source_a_trunk_applies_before_parsing(tmp_path: Path) -> None:
    """Whether a source is a trunk's is cached for the pre-parse checks: a new
    policy must be asked again."""
    net = make_net(tmp_path, security="bans: {strikes: 3}\n")
    net.deliver_from(STRANGER, GARBAGE[0])  # a stranger: strike 1
    trunks = tmp_path / "policies" / "trunks.yaml"
    extra = "  - name: partner\n    interface: external\n    address: 198.51.100.7\n"
    trunks.write_text(trunks.read_text() + extra)
    net.core.set_policy(load_policy(tmp_path / "policies"), net.now)
    for _ in range(10):  # now a trunk: its garbage is never a strike
        net.deliver_from(STRANGER, GARBAGE[0])
    assert net.core.guard.bans(net.now) == []
