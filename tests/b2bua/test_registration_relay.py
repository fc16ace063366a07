"""Registration relay: a phone behind NAT registers through the SBC to the
carrier's registrar, is kept alive, and gets its calls at its observed address."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peers import POLICIES, FakeUA, Net

from sbc.policy import load_policy
from sbc.sip.message import Request, parse_message
from sbc.sip.target import Target

PHONE_HOST = "127.0.0.30"
NAT_PORT = 40123  # the phone's packets come from here; its Contact names 192.168.1.5


def make_net(tmp_path: Path, relay: str = "", t1_ms: int = 500) -> tuple[Net, FakeUA]:
    """The demo with a relay on the external interface to the carrier; ``relay``
    adds settings to its ``registration`` block (``, key: value...``)."""
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    interfaces = (directory / "interfaces.yaml").read_text()
    interfaces = interfaces.replace(
        "    media_ports: [20000, 29999]  # inclusive RTP/RTCP port range; start must be even\n",
        "    media_ports: [20000, 29999]\n"
        f"    registration: {{registrar: carrier, client_expires_s: 60, keepalive_s: 15{relay}}}\n",
        1,
    )
    sbc_yaml = (directory / "sbc.yaml").read_text()
    (directory / "sbc.yaml").write_text(sbc_yaml.replace("t1_ms: 500 ", f"t1_ms: {t1_ms} ", 1))
    (directory / "interfaces.yaml").write_text(interfaces)
    (directory / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: to-phones, from_trunk: pbx, to_registered: true}\n"
        "  - {name: in, from_trunk: carrier, to: [pbx]}\n"
    )
    net = Net(load_policy(directory))
    phone = net.add_peer("phone", PHONE_HOST)
    return net, phone


def register(net: Net, phone: FakeUA, n: int, expires: int = 3600) -> None:
    data = (
        f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK-reg{n};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:alice@example.net>;tag=ph{n}\r\n"
        f"To: <sip:alice@example.net>\r\nCall-ID: phone-reg@192.168.1.5\r\nCSeq: {n} REGISTER\r\n"
        f"Contact: <sip:alice@192.168.1.5:5060>\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    net.deliver_from(Target("external", "udp", PHONE_HOST, NAT_PORT), data)


def test_register_call_keepalive_and_expiry(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    contact = upstream.headers.get("Contact") or ""
    assert "@127.0.0.1:5060" in contact  # the SBC's own Contact
    assert "192.168.1.5" not in upstream.serialize().decode()
    assert upstream.to.uri.user == "alice"  # type: ignore[union-attr]
    net.carrier.respond(upstream, 200, headers=[("Contact", f"{contact};expires=3600")])
    ok = phone.take_response(200)
    assert phone.targets[-1].port == NAT_PORT  # answered where it came from
    assert ok.headers.get("Contact") == "<sip:alice@192.168.1.5:5060>;expires=60"

    # A refresh while the upstream binding is good is answered locally (throttling).
    net.advance(50)
    register(net, phone, 2)
    assert phone.take_response(200)
    assert not net.carrier.requests("REGISTER")

    # The PBX calls alice: the INVITE goes to the phone's NAT address, to its Contact URI.
    net.pbx.invite("alice")
    invite = phone.take_request("INVITE")
    assert phone.targets[-1].port == NAT_PORT
    assert str(invite.uri) == "sip:alice@192.168.1.5:5060"

    # Keepalives go to the NAT address between refreshes.
    net.advance(16)
    assert phone.requests("OPTIONS")
    assert phone.targets[-1].port == NAT_PORT


def test_a_silent_phone_is_dropped_and_unregistered_upstream(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    net.carrier.respond(upstream, 200)
    net.advance(75)  # 60 s + grace, no refresh
    removal = net.carrier.requests("REGISTER")[-1]
    assert removal.headers.get("Expires") == "0"
    net.pbx.invite("alice")
    assert net.pbx.take_response(480).reason == "Not Registered"


def test_the_registrars_challenge_goes_to_the_phone(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    challenge = 'Digest realm="carrier", nonce="abc", algorithm=MD5, qop="auth"'
    net.carrier.respond(upstream, 401, headers=[("WWW-Authenticate", challenge)])
    relayed = phone.take_response(401)
    assert relayed.headers.get("WWW-Authenticate") == challenge


def test_register_on_an_interface_without_relay_is_a_strangers_403(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    data = (
        b"REGISTER sip:127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-x;rport\r\n"
        b"From: <sip:bob@x>;tag=1\r\nTo: <sip:bob@x>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n"
        b"Contact: <sip:bob@10.0.0.1>\r\nContent-Length: 0\r\n\r\n"
    )
    out = net.deliver_from(Target("internal", "udp", "127.0.0.99", 5060), data)
    answer = parse_message(out[0].data)
    assert not isinstance(answer, Request)
    assert answer.status == 403  # internal has no relay: a stranger is a stranger


def test_a_trunk_marked_register_is_registered_and_refreshed(tmp_path: Path) -> None:
    directory = tmp_path / "own"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n"
        "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
        "    register: {aor_user: '+15551230000', expires_s: 300}\n"
        "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n"
    )
    net = Net(load_policy(directory))
    net.advance(0.1)
    first = net.carrier.take_request("REGISTER")
    assert first.to.uri.user == "+15551230000"  # type: ignore[union-attr]
    net.carrier.respond(first, 200, headers=[("Expires", "120")])
    net.advance(59)
    assert not net.carrier.requests("REGISTER")
    net.advance(2)  # a 120 s grant is refreshed after 60 s
    refresh = net.carrier.requests("REGISTER")[0]  # (and its UDP retransmission)
    assert refresh.call_id == first.call_id
    assert refresh.cseq.seq == first.cseq.seq + 1
    status = net.core.registrations.statuses(net.now)[0]
    assert status.trunk == "carrier"


def test_a_call_to_the_contact_we_registered_upstream_reaches_the_phone(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    register(net, phone, 1)
    upstream = net.carrier.take_request("REGISTER")
    net.carrier.respond(upstream, 200)
    contact = upstream.contacts[0].uri
    net.pbx.invite(contact.user or "")  # type: ignore[union-attr]
    assert str(phone.take_request("INVITE").uri) == "sip:alice@192.168.1.5:5060"


def test_a_call_to_one_accounts_registered_contact_comes_from_that_trunk(tmp_path: Path) -> None:
    """Two accounts with one carrier: its calls all come from the same proxy, so
    the Request-URI, naming the Contact one account registered, says which
    trunk a call came in on (the proxy's own address names the other)."""
    directory = tmp_path / "accounts"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n"
        "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
        "  - name: second-account\n    interface: external\n    address: 127.0.0.11\n"
        "    sources: [127.0.0.10/32]   # its calls come from the carrier's proxy\n"
        "    register: {aor_user: '+15551239999', expires_s: 300}\n"
        "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n"
    )
    (directory / "routes.yaml").write_text(
        "routes:\n"
        "  - {name: second, from_trunk: second-account, reject: {status: 486, reason: Second}}\n"
        "  - {name: in, from_trunk: carrier, to: [pbx]}\n"
    )
    net = Net(load_policy(directory))
    registrar = net.add_peer("registrar", "127.0.0.11")
    net.advance(0.1)
    register = registrar.take_request("REGISTER")
    registrar.respond(register, 200, headers=[("Expires", "300")])
    contact = register.contacts[0].uri
    net.carrier.invite(contact.user or "")  # type: ignore[union-attr]
    refused = net.carrier.take_response(486, "INVITE")
    assert refused.reason == "Second"  # routed as the second account's call
    assert not net.pbx.requests("INVITE")
    net.carrier.invite("+15550001111")  # any other number: the source's own trunk
    assert net.pbx.requests("INVITE")


def test_the_registered_accounts_own_authentication_applies_to_its_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Screening and digest authentication use the same trunk as the call: a call
    to the second account's Contact must pass *its* require_auth, although the
    proxy's own trunk requires none."""
    monkeypatch.setenv("SBC_TEST_SECOND_SECRET", "s3cret")
    directory = tmp_path / "accounts"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n"
        "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
        "  - name: second-account\n    interface: external\n    address: 127.0.0.11\n"
        "    sources: [127.0.0.10/32]\n"
        "    register: {aor_user: '+15551239999', expires_s: 300}\n"
        "    require_auth:\n      realm: sbc.example\n"
        "      users: {carrier: {env: SBC_TEST_SECOND_SECRET}}\n"
        "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n"
    )
    net = Net(load_policy(directory))
    registrar = net.add_peer("registrar", "127.0.0.11")
    net.advance(0.1)
    register = registrar.take_request("REGISTER")
    registrar.respond(register, 200, headers=[("Expires", "300")])
    net.carrier.invite(register.contacts[0].uri.user or "")  # type: ignore[union-attr]
    challenge = net.carrier.take_response(401, "INVITE")
    assert "sbc.example" in (challenge.headers.get("WWW-Authenticate") or "")
    assert not net.pbx.requests("INVITE")
    net.carrier.invite("+15550001111")  # the proxy's own trunk: no authentication
    assert net.pbx.requests("INVITE")


# --- the relay under attack (issue 11: registration hijack, unbounded state) ----------

ATTACKER_HOST = "127.0.0.66"
VICTIM = Target("external", "udp", PHONE_HOST, NAT_PORT)
ATTACKER = Target("external", "udp", ATTACKER_HOST, 5060)
VICTIM_CONTACT = "<sip:alice@192.168.1.5:5060>"
CHALLENGE = 'Digest realm="carrier", nonce="abc", algorithm=MD5, qop="auth"'
CREDENTIALS = (
    'Digest username="alice", realm="carrier", nonce="abc", uri="sip:127.0.0.1",'
    ' response="0123456789abcdef0123456789abcdef", algorithm=MD5'
)


def send_register(
    net: Net,
    source: Target,
    n: int,
    *,
    user: str = "alice",
    contact: str | None = VICTIM_CONTACT,
    expires: str | None = "3600",
    headers: tuple[str, ...] = (),
) -> None:
    """A REGISTER for ``user`` from ``source`` (its own Call-ID per source and user)."""
    lines = [
        "REGISTER sip:127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/{source.transport.upper()} {source.host}:{source.port}"
        f";branch=z9hG4bK-{user}-{source.port}-{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@example.net>;tag=f{n}",
        f"To: <sip:{user}@example.net>",
        f"Call-ID: reg-{user}-{source.host}-{source.port}",
        f"CSeq: {n} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.extend(headers)
    lines.append("Content-Length: 0")
    net.deliver_from(source, ("\r\n".join(lines) + "\r\n\r\n").encode())


def confirm(net: Net, status: int = 200) -> Request:
    """The registrar answers the one upstream REGISTER it holds."""
    upstream = net.carrier.take_request("REGISTER")
    extra = [("WWW-Authenticate", CHALLENGE)] if status == 401 else []
    if status == 200 and upstream.headers.get("Expires") != "0":
        extra = [("Contact", f"{upstream.headers.get('Contact')};expires=3600")]
    net.carrier.respond(upstream, status, headers=extra)
    return upstream


def registered(tmp_path: Path, relay: str = "") -> tuple[Net, FakeUA, FakeUA]:
    """alice registered from VICTIM and confirmed by the registrar (an hour upstream)."""
    net, phone = make_net(tmp_path, relay)
    attacker = net.add_peer("attacker", ATTACKER_HOST)
    send_register(net, VICTIM, 1)
    confirm(net)
    phone.take_response(200)
    return net, phone, attacker


def calls_reach_the_victim(net: Net, phone: FakeUA, attacker: FakeUA) -> None:
    net.pbx.invite("alice")
    phone.take_request("INVITE")
    assert phone.targets[-1] == VICTIM
    assert not attacker.requests("INVITE")
    assert not net.pbx.responses(480)


def test_a_register_from_another_source_leaves_the_binding_to_the_registrar(
    tmp_path: Path,
) -> None:
    """While alice's upstream binding is fresh, a stranger registers alice with
    its own Contact: it is not answered locally but relayed, and until the
    registrar says 2xx (it says 401: no credentials) calls still reach alice."""
    net, phone, attacker = registered(tmp_path)
    send_register(net, ATTACKER, 1, contact="<sip:alice@203.0.113.66:5060>")
    assert not attacker.responses(200)  # never absorbed from another source
    upstream = net.carrier.take_request("REGISTER")
    assert "203.0.113.66" not in upstream.serialize().decode()
    calls_reach_the_victim(net, phone, attacker)  # pending: nothing changed yet
    net.carrier.respond(upstream, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    assert attacker.take_response(401).headers.get("WWW-Authenticate") == CHALLENGE
    calls_reach_the_victim(net, phone, attacker)
    assert net.core.registrar.stats["hijack_refused"] == 1


def test_the_binding_moves_once_the_registrar_accepts_the_new_source(tmp_path: Path) -> None:
    """A phone whose NAT mapping changed re-registers with credentials from a
    new port: the registrar's 2xx moves the binding, and calls follow."""
    net, phone, _ = registered(tmp_path)
    moved = Target("external", "udp", PHONE_HOST, NAT_PORT + 1)
    send_register(net, moved, 1, headers=(f"Authorization: {CREDENTIALS}",))
    upstream = confirm(net)
    assert upstream.headers.get("Authorization") == CREDENTIALS
    phone.take_response(200)
    assert phone.targets[-1] == moved
    net.pbx.invite("alice")
    phone.take_request("INVITE")
    assert phone.targets[-1] == moved


@pytest.mark.parametrize(
    ("contact", "expires"),
    [
        (VICTIM_CONTACT, "0"),
        ("<sip:alice@203.0.113.66:5060>;expires=0", None),
        ("*", "0"),
    ],
    ids=["Expires-0", "contact-expires-0", "Contact-star"],
)
def test_a_removal_from_another_source_is_the_registrars_decision(
    tmp_path: Path, contact: str, expires: str | None
) -> None:
    """A stranger's removal of alice goes upstream (our Contact, Expires: 0);
    the registrar refuses it, and alice keeps her binding and her calls."""
    net, phone, attacker = registered(tmp_path)
    send_register(net, ATTACKER, 1, contact=contact, expires=expires)
    assert not attacker.responses(200)
    upstream = net.carrier.take_request("REGISTER")
    assert upstream.headers.get("Expires") == "0"
    assert "@127.0.0.1:5060" in (upstream.headers.get("Contact") or "")
    net.carrier.respond(upstream, 401, headers=[("WWW-Authenticate", CHALLENGE)])
    attacker.take_response(401)
    calls_reach_the_victim(net, phone, attacker)


def test_the_phones_own_removal_takes_effect_on_the_registrars_2xx(tmp_path: Path) -> None:
    net, phone, attacker = registered(tmp_path)
    send_register(net, VICTIM, 2, expires="0")
    assert not phone.responses(200)
    upstream = net.carrier.take_request("REGISTER")
    assert upstream.headers.get("Expires") == "0"
    calls_reach_the_victim(net, phone, attacker)  # still bound until the 2xx
    net.carrier.respond(upstream, 200)
    ok = phone.take_response(200, "REGISTER")
    assert ok.headers.get("Contact") is None  # nothing bound any more
    net.pbx.invite("alice")
    assert net.pbx.take_response(480).reason == "Not Registered"
    assert not net.core.registrar.binds_source(PHONE_HOST)


def test_a_query_reveals_the_contact_only_to_the_bindings_own_source(tmp_path: Path) -> None:
    """RFC 3261 §10.2.3 query (no Contact): the phone itself learns its binding;
    anyone else gets the answer it would get if nobody were registered."""
    net, phone, attacker = registered(tmp_path)
    send_register(net, ATTACKER, 1, contact=None, expires=None)
    answer = attacker.take_response(200)
    assert answer.headers.get("Contact") is None
    assert not net.carrier.requests("REGISTER")
    other_port = Target("external", "udp", PHONE_HOST, NAT_PORT + 7)
    send_register(net, other_port, 1, contact=None, expires=None)
    assert phone.take_response(200).headers.get("Contact") is None
    send_register(net, VICTIM, 2, contact=None, expires=None)
    own = phone.take_response(200)
    assert (own.headers.get("Contact") or "").startswith(VICTIM_CONTACT)
    assert net.core.registrar.stats["queries_hidden"] == 2


@pytest.mark.parametrize(
    ("source", "contact"),
    [
        (Target("external", "udp", PHONE_HOST, NAT_PORT + 1), VICTIM_CONTACT),
        (Target("external", "tcp", PHONE_HOST, NAT_PORT, 5), VICTIM_CONTACT),
        (VICTIM, "<sip:alice@203.0.113.66:5060>"),
    ],
    ids=["other-port", "other-transport", "other-contact"],
)
def test_a_fresh_upstream_refresh_is_absorbed_only_from_the_same_flow(
    tmp_path: Path, source: Target, contact: str
) -> None:
    net, phone, _ = registered(tmp_path)
    send_register(net, source, 2, contact=contact)
    assert not phone.responses(200)
    assert net.carrier.take_request("REGISTER")  # to be authenticated upstream


def test_a_tcp_refresh_is_absorbed_only_on_the_bindings_connection(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path)
    first = Target("external", "tcp", PHONE_HOST, NAT_PORT, 7)
    send_register(net, first, 1)
    confirm(net)
    phone.take_response(200)
    other = Target("external", "tcp", PHONE_HOST, NAT_PORT, 8)  # same address, new connection
    send_register(net, other, 2)
    assert not phone.responses(200)
    assert net.carrier.take_request("REGISTER")
    send_register(net, first, 3)
    assert phone.take_response(200).cseq.seq == 3  # its own connection: answered here
    assert not net.carrier.requests("REGISTER")


def test_a_challenged_registration_leaves_no_state(tmp_path: Path) -> None:
    net, _, attacker = registered(tmp_path)
    send_register(net, ATTACKER, 1, user="mallory", contact="<sip:mallory@203.0.113.66>")
    assert len(net.core.registrar.pending) == 1
    confirm(net, 401)
    attacker.take_response(401)
    assert "mallory" not in net.core.registrar.relay.bindings
    assert len(net.core.registrar.pending) == 0
    assert not net.core.registrar.binds_source(ATTACKER_HOST)
    assert net.core.registrar.binds_source(PHONE_HOST)


def test_an_unanswered_registration_expires_and_a_late_2xx_is_undone(tmp_path: Path) -> None:
    """A slow T1 (Timer F = 128 s) leaves the pending TTL (32 s) to act: the
    phone gets 408, nothing is kept, and a 2xx arriving after that is taken
    back upstream so the registrar holds no Contact nobody answers for."""
    net, _ = make_net(tmp_path, t1_ms=2000)
    attacker = net.add_peer("attacker", ATTACKER_HOST)
    send_register(net, ATTACKER, 1, user="mallory", contact="<sip:mallory@203.0.113.66>")
    upstream = net.carrier.requests("REGISTER")[0]
    net.advance(33)
    assert attacker.take_response(408)
    assert len(net.core.registrar.pending) == 0
    assert net.core.registrar.stats["pending_expired"] == 1
    net.carrier.clear()
    net.carrier.respond(upstream, 200, headers=[("Expires", "3600")])
    removal = net.carrier.requests("REGISTER")[0]
    assert removal.headers.get("Expires") == "0"
    assert removal.headers.get("Contact") == upstream.headers.get("Contact")
    assert "mallory" not in net.core.registrar.relay.bindings
    assert not attacker.responses(200)


def test_pending_registrations_are_capped_per_source_and_in_total(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path, ", max_pending_per_source: 2, max_pending: 3")
    attacker = net.add_peer("attacker", ATTACKER_HOST)
    second = net.add_peer("second", "127.0.0.67")
    third = net.add_peer("third", "127.0.0.68")
    for n in (1, 2):
        send_register(net, ATTACKER, n, user=f"u{n}")
    send_register(net, ATTACKER, 3, user="u3")
    refused = attacker.take_response(503)
    assert refused.headers.get("Retry-After")
    send_register(net, Target("external", "udp", "127.0.0.67", 5060), 1, user="u4")
    assert not second.responses(503)
    send_register(net, Target("external", "udp", "127.0.0.68", 5060), 1, user="u5")
    assert third.take_response(503).headers.get("Retry-After")
    assert len(net.core.registrar.pending) == 3
    assert net.core.registrar.stats["refused_pending_cap"] == 2
    assert len({r.to.uri.user for r in net.carrier.requests("REGISTER")}) == 3  # type: ignore[union-attr]


def test_bindings_are_capped_per_source_and_in_total(tmp_path: Path) -> None:
    net, phone = make_net(tmp_path, ", max_bindings_per_source: 2, max_bindings: 3")
    for n, user in enumerate(("alice", "bob"), start=1):
        send_register(net, Target("external", "udp", PHONE_HOST, NAT_PORT + n), 1, user=user)
        confirm(net)
        phone.take_response(200)
    send_register(net, Target("external", "udp", PHONE_HOST, NAT_PORT + 3), 1, user="carol")
    assert phone.take_response(503).headers.get("Retry-After")
    assert not net.carrier.requests("REGISTER")
    # A refresh of a binding the source already has is no new binding.
    send_register(net, Target("external", "udp", PHONE_HOST, NAT_PORT + 1), 2, user="alice")
    phone.take_response(200)
    other = net.add_peer("other", "127.0.0.67")
    send_register(net, Target("external", "udp", "127.0.0.67", 5060), 1, user="dave")
    confirm(net)
    other.take_response(200)
    last = net.add_peer("last", "127.0.0.68")
    send_register(net, Target("external", "udp", "127.0.0.68", 5060), 1, user="erin")
    assert last.take_response(503)
    assert net.core.registrar.stats["refused_binding_cap"] == 2
    assert len(net.core.registrar.relay.bindings) == 3


@pytest.mark.parametrize("expires", ["²", "9" * 5000], ids=["superscript", "5000-digits"])
def test_an_expires_header_the_parser_refuses_gets_400(tmp_path: Path, expires: str) -> None:
    """RFC 3261 §20.19: 0 .. 2**32-1 in ASCII digits, or the request is malformed."""
    net, phone = make_net(tmp_path)
    send_register(net, VICTIM, 1, expires=expires)
    assert phone.take_response(400)
    assert not net.carrier.requests("REGISTER")


@pytest.mark.parametrize(
    ("contact", "expires"),
    [
        (VICTIM_CONTACT + ";expires=²", None),
        (VICTIM_CONTACT + ";expires=" + "9" * 5000, None),
        (VICTIM_CONTACT + ";expires=0x10", "0"),
    ],
    ids=["param-superscript", "param-5000-digits", "param-hex"],
)
def test_expires_is_ascii_digits_with_a_cap(
    tmp_path: Path, contact: str, expires: str | None
) -> None:
    """`'²'.isdigit()` is True and int() of 5,000 digits raises: neither may
    escape, and neither is a removal (RFC 3261 §20.19: 0 .. 2**32-1). A
    malformed parameter counts as absent (§10.2.1.1: then the header)."""
    net, phone = make_net(tmp_path)
    send_register(net, VICTIM, 1, contact=contact, expires=expires)
    if expires == "0":  # the malformed parameter is ignored: the header removes
        assert not net.carrier.requests("REGISTER")  # nothing bound: nothing to remove
        assert phone.take_response(200).headers.get("Contact") is None
        return
    upstream = net.carrier.take_request("REGISTER")
    assert upstream.headers.get("Expires") == "3600"  # a registration, for upstream_expires
    net.carrier.respond(upstream, 200)
    ok = phone.take_response(200)
    assert ok.headers.get("Contact") == f"{VICTIM_CONTACT};expires=60"


def test_binds_source_names_hosts_with_a_confirmed_binding(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    registrar = net.core.registrar
    send_register(net, VICTIM, 1)
    assert not registrar.binds_source(PHONE_HOST)  # pending: nothing confirmed yet
    confirm(net)
    assert registrar.binds_source(PHONE_HOST)
    assert not registrar.binds_source(ATTACKER_HOST)
    net.advance(75)  # the phone never refreshes: dropped
    assert not registrar.binds_source(PHONE_HOST)


def test_a_challenged_phone_retries_in_the_same_upstream_call_id(tmp_path: Path) -> None:
    """RFC 3261 §22.2 / §10.2.4: nothing is bound after the 401, yet the
    phone's retry with credentials goes upstream in the same Call-ID with the
    next CSeq (registrars and SIPp match the retry to the challenge)."""
    net, phone = make_net(tmp_path)
    send_register(net, VICTIM, 1)
    challenged = confirm(net, 401)
    phone.take_response(401)
    send_register(net, VICTIM, 2, headers=(f"Authorization: {CREDENTIALS}",))
    retry = confirm(net)
    phone.take_response(200)
    assert retry.call_id == challenged.call_id
    assert retry.cseq.seq == challenged.cseq.seq + 1
    assert retry.headers.get("Contact") == challenged.headers.get("Contact")
