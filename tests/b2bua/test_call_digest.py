"""Digest authentication toward a trunk (RFC 3261 §22): the carrier challenges,
the SBC answers with the trunk's credentials, the caller never sees it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peers import POLICIES, Net, sdp

from sbc.auth.server import AuthStatus, DigestServer
from sbc.policy import PolicyError, load_policy

REALM = "carrier.example"


def make_net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str) -> Net:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n"
        "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
        "    auth: {username: sbc-user, password: {env: SBC_TEST_CARRIER_SECRET}}\n"
        "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n"
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
