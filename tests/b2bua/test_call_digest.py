"""Digest authentication toward a trunk (RFC 3261 §22): the carrier challenges,
the SBC answers with the trunk's credentials, the caller never sees it."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import Net, NoRelay, policy_copy, sdp

from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.auth.server import AuthStatus, DigestServer
from sbc.policy import PolicyError, load_policy

REALM = "carrier.example"


def make_net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str) -> Net:
    directory = policy_copy(
        tmp_path,
        carrier_lines="    auth: {username: sbc-user, password: {env: SBC_TEST_CARRIER_SECRET}}\n",
    )
    monkeypatch.setenv("SBC_TEST_CARRIER_SECRET", password)
    return Net(load_policy(directory))


def carrier_auth() -> DigestServer:
    return DigestServer(REALM, b"k" * 32, {"sbc-user": "right"}, algorithm="SHA-256")


def test_a_challenged_invite_is_answered_and_the_call_goes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_net(tmp_path, monkeypatch, "right")
    server = carrier_auth()
    a = net.pbx.invite("5551000")
    first = net.carrier.take_request("INVITE")
    net.carrier.respond(first, 407, headers=[("Proxy-Authenticate", server.challenge(net.now))])
    second = net.carrier.take_request("INVITE")
    assert second.cseq.seq == first.cseq.seq + 1  # RFC 3261 §22.2
    assert second.call_id == first.call_id
    assert second.top_via.branch != first.top_via.branch
    answer = second.headers.get("Proxy-Authorization")
    assert answer is not None
    assert server.verify(second, answer, net.now).status is AuthStatus.OK
    assert not net.pbx.responses(407)  # the caller never sees the challenge
    net.carrier.respond(second, 200, body=sdp(net.carrier.host))
    ack = net.carrier.requests("ACK")[-1]  # (the first ACKed the 407, hop by hop)
    assert ack.cseq.seq == second.cseq.seq
    assert ack.headers.get("Proxy-Authorization") == answer  # §22.1
    assert net.pbx.take_response(200)
    net.pbx.ack(a)


def test_wrong_credentials_fail_clearly_without_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = make_net(tmp_path, monkeypatch, "wrong")
    server = carrier_auth()
    net.pbx.invite("5551000")
    for _ in range(3):  # the carrier keeps challenging whatever it gets
        invites = net.carrier.requests("INVITE")
        if not invites:
            break
        net.carrier.clear()
        latest = invites[-1]
        value = latest.headers.get("Proxy-Authorization")
        if value is not None:
            assert server.verify(latest, value, net.now).status is AuthStatus.FAILED
        net.carrier.respond(
            latest, 407, headers=[("Proxy-Authenticate", server.challenge(net.now))]
        )
    refused = net.pbx.take_response(403)
    assert refused.reason == "Trunk Authentication Failed"
    net.settle()
    assert not net.core.calls


def test_a_missing_secret_is_a_policy_error_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_net(tmp_path, monkeypatch, "x")
    monkeypatch.delenv("SBC_TEST_CARRIER_SECRET")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "policies")
    [issue] = caught.value.issues
    assert str(issue).startswith("trunks.yaml:5: trunks[0].auth.password: ")
    assert "SBC_TEST_CARRIER_SECRET" in str(issue)


def pbx_requires_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Net:
    directory = policy_copy(
        tmp_path,
        pbx_lines="    require_auth:\n"
        "      realm: sbc.example\n"
        "      users: {pbx1: {env: SBC_TEST_PBX_SECRET}}\n",
    )
    monkeypatch.setenv("SBC_TEST_PBX_SECRET", "pbx-pass")
    return Net(load_policy(directory))


def test_a_trunk_that_must_authenticate_is_challenged_then_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = pbx_requires_auth(tmp_path, monkeypatch)
    dlg = net.pbx.invite("5551000")
    challenge = net.pbx.take_response(401)
    assert (challenge.headers.get("WWW-Authenticate") or "").startswith("Digest ")
    assert not net.carrier.requests("INVITE")  # nothing crossed
    assert dlg.invite is not None
    retry = dlg.invite.copy()
    retry.headers.set("CSeq", "2 INVITE")
    retry.headers.set("Via", (dlg.invite.headers.get("Via") or "").replace("z9hG4bK", "z9hG4bKx"))
    assert ClientAuth(DigestCredentials("pbx1", "pbx-pass")).authorize(retry, challenge)
    net.deliver(net.pbx, retry.serialize())
    assert net.carrier.take_request("INVITE")
    # OPTIONS keepalives are not challenged.
    net.pbx.request(net.pbx.invite(send=False), "OPTIONS")
    assert net.pbx.take_response(200, "OPTIONS")


def test_wrong_passwords_from_a_trunk_alert_but_never_ban_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trunk's address can be forged: its failures are counted per trunk and
    user and alerted on (security.yaml: bans.auth_failures), never banned."""
    net = pbx_requires_auth(tmp_path, monkeypatch)
    answered = 0
    for n in range(12):
        dlg = net.pbx.invite(str(n))
        if not net.pbx.responses(401):
            break  # banned: silence from now on
        answered += 1
        challenge = net.pbx.take_response(401)
        assert dlg.invite is not None
        retry = dlg.invite.copy()
        retry.headers.set("CSeq", "2 INVITE")
        retry.headers.set(
            "Via", (dlg.invite.headers.get("Via") or "").replace("z9hG4bK", "z9hG4bKy")
        )
        ClientAuth(DigestCredentials("pbx1", "guess")).authorize(retry, challenge)
        net.deliver(net.pbx, retry.serialize())
        net.pbx.clear()
    assert answered == 12
    assert net.core.stats["auth_failures"] == 12
    assert net.core.guard.auth_failures == {"pbx": 12}
    assert net.core.guard.auth_alerts == {"pbx": 1}  # at the 10th, once per window
    assert net.core.guard.bans(net.now) == []
    assert not net.carrier.requests("INVITE")


def test_a_trunk_that_requires_srtp_is_offered_sdes(tmp_path: Path) -> None:
    from sbc.media.anchor import MediaAnchor
    from sbc.media.ports import PortPool

    directory = policy_copy(tmp_path, pbx_lines="    srtp: required\n")
    net = Net(load_policy(directory))
    net.core.media = MediaAnchor(NoRelay(), PortPool())
    net.carrier.invite("1000")
    invite = net.pbx.take_request("INVITE")
    body = invite.body.decode()
    assert "RTP/SAVP" in body
    assert "a=crypto:" in body


def test_a_forged_invite_with_bogus_credentials_gets_one_stateless_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can write a trunk's address on a UDP INVITE: the challenge keeps no
    transaction (nonces are HMACs), so it is sent once, not re-sent by Timer G
    for 32 s toward the forged address."""
    net = pbx_requires_auth(tmp_path, monkeypatch)
    dlg = net.pbx.invite("5551000", send=False)
    assert dlg.invite is not None
    dlg.invite.headers.add(
        "Authorization",
        'Digest username="pbx1", realm="sbc.example", nonce="forged", '
        'uri="sip:5551000@127.0.0.2", response="00000000000000000000000000000000"',
    )
    net.deliver(net.pbx, dlg.invite.serialize())
    assert len(net.pbx.responses(401)) == 1
    assert len(net.core.layer) == 0  # nothing kept for it
    net.advance(40)
    assert len(net.pbx.responses(401)) == 1  # and nothing re-sent
    assert not net.carrier.requests("INVITE")
