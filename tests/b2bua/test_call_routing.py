"""Routing decisions as the far ends see them: failover, rejection,
translation, weighted groups, trunk liveness and headers a trunk may pass."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from peers import POLICIES, FakeUA, Net, headers_text, sdp

from sbc.policy import load_policy

CARRIER2_HOST, CARRIER3_HOST = "127.0.0.11", "127.0.0.12"

EXTRA_TRUNKS = f"""
  - name: carrier2
    interface: external
    address: {CARRIER2_HOST}
  - name: carrier3
    interface: external
    address: {CARRIER3_HOST}
"""


def make_net(tmp_path: Path, routes: str, *, trunks_extra: str = EXTRA_TRUNKS) -> Net:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink(missing_ok=True)  # routing alone
    trunks = (directory / "trunks.yaml").read_text() + trunks_extra
    (directory / "trunks.yaml").write_text(trunks)
    (directory / "routes.yaml").write_text(routes)
    return Net(load_policy(directory))


FAILOVER = """\
routes:
  - name: out
    from_trunk: pbx
    translate: {regex: "^00", replacement: "+"}
    to: [carrier, carrier2]
  - name: in
    from_trunk: carrier
    to: [pbx]
"""


@pytest.fixture
def failover(tmp_path: Path) -> tuple[Net, FakeUA]:
    net = make_net(tmp_path, FAILOVER)
    return net, net.add_peer("carrier2", CARRIER2_HOST)


@pytest.mark.parametrize("status", [503, 500])
def test_failover_on_5xx_reaches_the_next_trunk(failover: tuple[Net, FakeUA], status: int) -> None:
    net, carrier2 = failover
    a = net.pbx.invite("0044207")
    first = net.carrier.take_request("INVITE")
    assert first.uri.user == "+44207"  # type: ignore[union-attr]
    net.carrier.respond(first, 180)
    net.pbx.take_response(180)  # ringing without media does not commit the call
    net.carrier.respond(first, status)
    second = carrier2.take_request("INVITE")
    assert second.uri.user == "+44207"  # type: ignore[union-attr]
    assert second.call_id != first.call_id
    assert net.pbx.host not in headers_text(second)
    assert not net.pbx.responses(status)  # the caller never sees the failure
    carrier2.respond(second, 200, body=sdp(carrier2.host))
    net.pbx.take_response(200)
    net.pbx.ack(a)
    assert carrier2.take_request("ACK").call_id == second.call_id
    net.pbx.request(a, "BYE")
    bye = carrier2.take_request("BYE")
    carrier2.respond(bye, 200)
    assert net.pbx.take_response(200, "BYE")
    net.settle()
    assert not net.core.calls
    assert net.core.stats["failovers"] == 1


def test_failover_on_timeout(failover: tuple[Net, FakeUA]) -> None:
    net, carrier2 = failover
    a = net.pbx.invite("1")
    net.carrier.take_request("INVITE")
    net.advance(40)  # Timer B (64*T1 = 32 s): no answer at all
    assert not net.pbx.responses(408)  # the timeout went to carrier2, not to the caller
    second = carrier2.requests("INVITE")[0]  # retransmitted meanwhile
    carrier2.respond(second, 486)
    busy = net.pbx.take_response(486)
    assert busy.call_id == a.call_id  # the caller's own call gets carrier2's answer
    net.settle()
    assert not net.core.calls


def test_busy_is_final_no_failover(failover: tuple[Net, FakeUA]) -> None:
    net, carrier2 = failover
    net.pbx.invite("1")
    first = net.carrier.take_request("INVITE")
    net.carrier.respond(first, 486)
    net.pbx.take_response(486)
    assert not carrier2.requests("INVITE")


def test_no_failover_once_the_caller_has_early_media(failover: tuple[Net, FakeUA]) -> None:
    net, carrier2 = failover
    net.pbx.invite("1")
    first = net.carrier.take_request("INVITE")
    net.carrier.respond(first, 183, body=sdp(net.carrier.host, direction="sendonly"))
    net.pbx.take_response(183)
    net.carrier.respond(first, 503)
    net.pbx.take_response(503)
    assert not carrier2.requests("INVITE")


def test_last_trunk_failure_reaches_the_caller(failover: tuple[Net, FakeUA]) -> None:
    net, carrier2 = failover
    net.pbx.invite("1")
    net.carrier.respond(net.carrier.take_request("INVITE"), 503)
    carrier2.respond(carrier2.take_request("INVITE"), 503)
    assert net.pbx.take_response(503)
    net.settle()
    assert not net.core.calls


def test_cancel_during_failover_attempt_cancels_the_new_b_leg(
    failover: tuple[Net, FakeUA],
) -> None:
    net, carrier2 = failover
    a = net.pbx.invite("1")
    net.carrier.respond(net.carrier.take_request("INVITE"), 503)
    second = carrier2.take_request("INVITE")
    carrier2.respond(second, 180)
    net.pbx.cancel(a)
    cancel = carrier2.take_request("CANCEL")
    assert cancel.call_id == second.call_id
    assert not net.carrier.requests("CANCEL")
    carrier2.respond(cancel, 200)
    carrier2.respond(second, 487)
    net.pbx.take_response(487)
    net.settle()
    assert not net.core.calls


def test_reject_route_answers_without_a_b_leg(tmp_path: Path) -> None:
    net = make_net(
        tmp_path,
        """\
routes:
  - name: barred
    prefix: "1900"
    reject: {status: 403, reason: Premium Numbers Barred}
  - name: out
    to: [carrier]
""",
    )
    net.pbx.invite("1900555")
    refused = net.pbx.take_response(403)
    assert refused.reason == "Premium Numbers Barred"
    assert not net.carrier.requests("INVITE")
    net.pbx.invite("555")
    assert net.carrier.take_request("INVITE")


def test_no_route_is_404(tmp_path: Path) -> None:
    net = make_net(tmp_path, "routes:\n  - name: only\n    prefix: '9'\n    to: [carrier]\n")
    net.pbx.invite("1")
    assert net.pbx.take_response(404).reason == "No Route"


def test_weighted_group_balances_new_calls(tmp_path: Path) -> None:
    net = make_net(
        tmp_path,
        """\
routes:
  - name: out
    from_trunk: pbx
    to: [{group: [{trunk: carrier, weight: 1}, {trunk: carrier2, weight: 1}]}]
""",
    )
    carrier2 = net.add_peer("carrier2", CARRIER2_HOST)
    for _ in range(200):
        net.pbx.invite("1")
    counts = Counter({"carrier": len(net.carrier.requests("INVITE"))})
    counts["carrier2"] = len(carrier2.requests("INVITE"))
    assert counts["carrier"] + counts["carrier2"] == 200
    assert 60 < counts["carrier"] < 140  # 1:1 weights; far outside = broken


def test_a_trunk_that_stops_answering_options_is_skipped(tmp_path: Path) -> None:
    probed = EXTRA_TRUNKS.replace(
        f"address: {CARRIER2_HOST}", f"address: {CARRIER2_HOST}\n    options_interval_s: 10"
    )
    net = make_net(
        tmp_path,
        "routes:\n  - name: out\n    from_trunk: pbx\n    to: [carrier2, carrier]\n",
        trunks_extra=probed,
    )
    carrier2 = net.add_peer("carrier2", CARRIER2_HOST)
    net.advance(1)
    probe = carrier2.requests("OPTIONS")[0]  # and its retransmission
    assert probe.uri.host == CARRIER2_HOST  # type: ignore[union-attr]
    assert net.pbx.host not in headers_text(probe)
    carrier2.respond(probe, 200)
    net.pbx.invite("1")
    assert carrier2.take_request("INVITE")
    net.settle()  # the unanswered INVITE runs out; probes keep going unanswered
    carrier2.clear()
    net.carrier.clear()
    net.pbx.invite("2")
    assert not carrier2.requests("INVITE")  # down: skipped
    assert net.carrier.take_request("INVITE")
    net.advance(15)
    carrier2.respond(carrier2.requests("OPTIONS")[-1], 200)  # back
    net.pbx.invite("3")
    assert carrier2.requests("INVITE")


def test_pass_headers_cross_from_that_trunk_only(tmp_path: Path) -> None:
    net = make_net(tmp_path, FAILOVER)
    trunks = (Path(tmp_path / "policies") / "trunks.yaml").read_text()
    trunks = trunks.replace(
        "address: 127.0.0.20\n", "address: 127.0.0.20\n    pass_headers: [X-Customer, User-Agent]\n"
    )
    (tmp_path / "policies" / "trunks.yaml").write_text(trunks)
    net = Net(load_policy(tmp_path / "policies"))  # with the demo's other files
    headers = [("X-Customer", "42"), ("X-Secret", "no"), ("User-Agent", "PBX 1.0")]
    net.pbx.invite("1", headers=headers)
    invite = net.carrier.take_request("INVITE")
    assert invite.headers.get("X-Customer") == "42"
    assert invite.headers.get("X-Secret") is None
    assert invite.headers.get_all("User-Agent") == ["PBX 1.0"]
    net.carrier.invite("1", headers=headers)
    inbound = net.pbx.take_request("INVITE")
    assert inbound.headers.get("X-Customer") is None  # the carrier has no pass list
    assert inbound.headers.get_all("User-Agent") == ["sbc"]


def test_identity_headers_cross_with_our_host_and_no_network_leaks(tmp_path: Path) -> None:
    net = make_net(tmp_path, FAILOVER)  # no manipulations: the B2BUA's own rules
    headers = [
        ("P-Asserted-Identity", '"Alice" <sip:1000@10.1.2.3;user=phone>, <tel:+15551000>'),
        ("Diversion", "<sip:2000@pbx.corp.local>;reason=unconditional;counter=1"),
        ("Call-Info", "<sip:10.1.2.3>;purpose=call-completion"),
        ("Alert-Info", "<http://10.1.2.3/ring.wav>"),
        ("History-Info", "<sip:3000@10.1.2.3?Reason=SIP%3Bcause%3D302>;index=1"),
        ("P-Preferred-Identity", "garbage <<<"),
    ]
    net.pbx.invite("1", headers=headers)
    invite = net.carrier.take_request("INVITE")
    text = headers_text(invite)
    for leak in ("10.1.2.3", "pbx.corp.local", "127.0.0.20", "127.0.0.2"):
        assert leak not in text
    assert invite.headers.get("P-Asserted-Identity") == (
        '"Alice" <sip:1000@127.0.0.1>, <tel:+15551000>'
    )
    assert invite.headers.get("Diversion") == (
        "<sip:2000@127.0.0.1>;reason=unconditional;counter=1"
    )
    assert invite.headers.get("History-Info") == "<sip:3000@127.0.0.1>;index=1"
    assert "Call-Info" not in invite.headers
    assert "Alert-Info" not in invite.headers
    assert "P-Preferred-Identity" not in invite.headers  # unparseable: dropped, not leaked
    net.carrier.respond(
        invite,
        200,
        body=sdp(net.carrier.host),
        headers=[("P-Asserted-Identity", "<sip:+1555@core.carrier.net>")],
    )
    ok = net.pbx.take_response(200)
    assert ok.headers.get("P-Asserted-Identity") == "<sip:+1555@127.0.0.2>"
    assert "core.carrier.net" not in headers_text(ok)


def test_remote_party_id_crosses_rehosted_whatever_its_spelling(tmp_path: Path) -> None:
    net = make_net(tmp_path, FAILOVER)
    net.pbx.invite("1", headers=[("remote-party-id", "<sip:1000@10.1.2.3>;party=calling")])
    invite = net.carrier.take_request("INVITE")
    assert invite.headers.get("Remote-Party-ID") == "<sip:1000@127.0.0.1>;party=calling"
