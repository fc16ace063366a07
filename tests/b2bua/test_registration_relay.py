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


def make_net(tmp_path: Path) -> tuple[Net, FakeUA]:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    interfaces = (directory / "interfaces.yaml").read_text()
    interfaces = interfaces.replace(
        "    media_ports: [20000, 29999]  # inclusive RTP/RTCP port range; start must be even\n",
        "    media_ports: [20000, 29999]\n"
        "    registration: {registrar: carrier, client_expires_s: 60, keepalive_s: 15}\n",
        1,
    )
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
