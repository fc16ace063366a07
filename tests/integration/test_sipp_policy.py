"""The routing policy with real peers: failover, reject, translation, hot reload,
and topology hiding of whole messages in both directions.

Topology (loopback): carrier SIPp on 127.0.0.10 -> SBC external 127.0.0.1;
PBXes behind the SBC's internal 127.0.0.2: ``pbx`` (127.0.0.20) and ``pbx2``
(127.0.0.21), plus two trunks nobody answers for: ``pbx-silent`` (UDP, no
listener: Linux reports no ICMP error on an unconnected UDP socket, so the
INVITE times out, RFC 3261 §17.1.1.2 Timer B) and ``pbx-refused`` (TCP, no
listener: the connection is refused, a transport error, RFC 3261 §17.1.4).
What each far end received is read from the SIPp message logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    SbcProcess,
    SipMessage,
    Sipp,
    SippResult,
    TrunkDef,
    leaks,
    run_calls,
    serving,
)

pytestmark = pytest.mark.integration

PBX2_IP = "127.0.0.21"
SILENT_IP = "127.0.0.22"
REFUSED_IP = "127.0.0.23"
PROBED_IP = "127.0.0.24"

# Internal names and addresses each side puts in its messages (uac/uas_identity.xml).
CARRIER_NET = {"corp_host": "core.carrier.example", "corp_ip": "198.51.100.23"}
PBX_NET = {"corp_host": "pbx.corp.local", "corp_ip": "10.20.30.40"}

# T1 = 100 ms: Timer B (64*T1) gives up on the silent trunk after 6.4 s, not 32 s.
T1_MS = 100

POLICY_ROUTES = """\
routes:
  - {name: premium-barred, from_trunk: carrier, prefix: "1900",
     reject: {status: 403, reason: Premium Barred}}
  - {name: failover, from_trunk: carrier, prefix: "555", to: [pbx, pbx2]}
  - {name: failover-silent, from_trunk: carrier, prefix: "556", to: [pbx-silent, pbx2]}
  - {name: failover-refused, from_trunk: carrier, prefix: "557", to: [pbx-refused, pbx2]}
  - {name: shared, from_trunk: carrier, prefix: "559",
     to: [{group: [{trunk: pbx, weight: 3}, {trunk: pbx2, weight: 1}]}]}
  - {name: probed, from_trunk: carrier, prefix: "560", to: [pbx-probed, pbx2]}
  - {name: international, from_trunk: carrier, prefix: "00",
     translate: {regex: "^00", replacement: "+"}, to: [pbx]}
  - {name: carrier-to-pbx, from_trunk: carrier, to: [pbx]}
  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}
"""

POLICY_TRUNKS = (
    TrunkDef("pbx2", "internal", PBX2_IP),
    TrunkDef("pbx-silent", "internal", SILENT_IP, transport="udp"),
    TrunkDef("pbx-refused", "internal", REFUSED_IP, transport="tcp"),
    # OPTIONS every second to a TCP port nobody listens on: marked down at once.
    TrunkDef("pbx-probed", "internal", PROBED_IP, transport="tcp", extra="options_interval_s: 1"),
)


@pytest.fixture(scope="module")
def policy_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """One SBC for the routing tests and topology hiding (its routes are never edited)."""
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-policy"),
        t1_ms=T1_MS,
        routes_yaml=POLICY_ROUTES,
        extra_trunks=POLICY_TRUNKS,
    )
    yield from serving(sbc)


@pytest.fixture(scope="module")
def policy_sbc_block(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """The same SBC with the leak guard set to block: any leak would fail the call."""
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-policy-block"),
        t1_ms=T1_MS,
        routes_yaml=POLICY_ROUTES,
        extra_trunks=POLICY_TRUNKS,
        extra_sbc_yaml="calls: {shutdown_grace_s: 2}\ntopology: {leak_guard: block}\n",
    )
    yield from serving(sbc)


@pytest.fixture
def reload_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """An SBC of its own: the hot-reload test rewrites its routes."""
    yield from serving(SbcProcess(tmp_path_factory.mktemp("sbc-reload")))


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def callee(sbc: SbcProcess, trunk: str, scenario: str, tmp: Path, **kw: Any) -> Sipp:
    """A SIPp UAS listening where ``trunk`` points."""
    ip, port = sbc.trunk(trunk)
    kw.setdefault("duration_ms", 200)
    kw.setdefault("timeout_s", 30)
    return Sipp(scenario, local_ip=ip, local_port=port, workdir=tmp, name=trunk, **kw)


def carrier_call(sbc: SbcProcess, scenario: str, number: str, tmp: Path, **kw: Any) -> Sipp:
    """A SIPp UAC on the carrier calling ``number`` at the SBC's external interface."""
    kw.setdefault("duration_ms", 300)
    kw.setdefault("timeout_s", 30)
    return Sipp(
        scenario,
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        service=number,
        workdir=tmp,
        name=f"caller-{number}",
        **kw,
    )


def finals(res: SippResult) -> list[int]:
    return [s for s in res.statuses("INVITE") if s >= 200]


def first(msgs: list[SipMessage], what: str) -> SipMessage:
    assert msgs, f"no {what} in the message log"
    return msgs[0]


def dialog_ids(res: SippResult) -> list[str]:
    """The Call-IDs of one side's dialog and the tags that side chose: what
    must never reach the other side (for leak checks)."""
    ids = {m.call_id for m in res.messages if m.call_id}
    for m in res.sent:
        tag = m.from_tag if m.is_request else m.to_tag
        if tag:
            ids.add(tag)
    return sorted(ids)


def call_events(sbc: SbcProcess, a_call_id: str, event: str) -> list[dict[str, Any]]:
    return [
        e for e in sbc.log_events() if e.get("event") == event and e.get("a_call_id") == a_call_id
    ]


def uri_user(uri: str | None) -> str | None:
    if uri is None or "@" not in uri:
        return None
    return uri.split(":", 1)[1].split("@", 1)[0]


def assert_ok(*results: SippResult) -> None:
    for res in results:
        assert res.ok, "\n".join(r.describe() for r in results)


# --------------------------------------------------------------------------
# failover
# --------------------------------------------------------------------------


def test_failover_on_503_reaches_second_pbx(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """pbx answers 503: the SBC tries pbx2; the caller sees only pbx2's answer."""
    failing = callee(
        policy_sbc,
        "pbx",
        "uas_failure",
        tmp_path,
        keys={"status_line": "SIP/2.0 503 Service Unavailable"},
    )
    answering = callee(policy_sbc, "pbx2", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_basic", "5551234", tmp_path)
    (pbx, pbx2), uac, _ = run_calls([failing, answering], caller)
    assert_ok(uac, pbx, pbx2)

    assert finals(uac) == [200], uac.describe()
    assert 503 not in uac.statuses("INVITE"), "the caller must never see the failed attempt"
    assert uac.statuses("BYE") == [200]
    assert pbx.requests("ACK", "received"), "the SBC must ACK pbx's 503"
    assert pbx2.requests("BYE", "received"), "the call must end at pbx2"

    a_inv = first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    first_try = first(pbx.requests("INVITE", "received"), "INVITE at pbx")
    second_try = first(pbx2.requests("INVITE", "received"), "INVITE at pbx2")
    assert uri_user(second_try.request_uri) == "5551234"
    assert second_try.call_id != first_try.call_id, "each attempt is a fresh B-leg"
    # pbx2 learns nothing of the caller, the other PBX, or the first attempt.
    needles = [CARRIER_IP, PBX_IP, SBC_EXT_IP, *dialog_ids(uac), *dialog_ids(pbx)]
    assert first_try.call_id
    needles.append(first_try.call_id)
    leaked = leaks(pbx2.received, needles, part="all")
    assert not leaked, "leaked to pbx2:\n" + "\n".join(leaked)
    # ...and the caller nothing of either PBX.
    leaked = leaks(uac.received, [PBX_IP, PBX2_IP, SBC_INT_IP, *dialog_ids(pbx2)], part="all")
    assert not leaked, "leaked to the caller:\n" + "\n".join(leaked)

    assert a_inv.call_id
    moves = call_events(policy_sbc, a_inv.call_id, "call.failover")
    assert [(e.get("status"), e.get("trunk")) for e in moves] == [(503, "pbx2")], moves


@pytest.mark.slow
def test_failover_when_trunk_is_silent(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """Nobody listens on pbx-silent's UDP port: the INVITE times out (Timer B),
    then pbx2 gets the call; the caller only ever sees pbx2's answer."""
    answering = callee(policy_sbc, "pbx2", "uas_basic", tmp_path, timeout_s=40)
    caller = carrier_call(policy_sbc, "uac_basic", "5561234", tmp_path, timeout_s=40)
    (pbx2,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, pbx2)
    assert finals(uac) == [200], uac.describe()
    assert uac.statuses("BYE") == [200]
    b_inv = first(pbx2.requests("INVITE", "received"), "INVITE at pbx2")
    assert uri_user(b_inv.request_uri) == "5561234"
    a_inv = first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    assert a_inv.call_id
    moves = call_events(policy_sbc, a_inv.call_id, "call.failover")
    # (the event's ``trunk`` is the one the call moves to)
    assert [(e.get("status"), e.get("trunk")) for e in moves] == [(408, "pbx2")], moves


def test_failover_when_trunk_refuses_connection(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """pbx-refused is TCP with no listener: the refused connection is a transport
    error (503 internally, RFC 3261 §17.1.4) and pbx2 gets the call."""
    answering = callee(policy_sbc, "pbx2", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_basic", "5571234", tmp_path)
    (pbx2,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, pbx2)
    assert finals(uac) == [200], uac.describe()
    assert 503 not in uac.statuses("INVITE")
    assert pbx2.requests("INVITE", "received")
    a_inv = first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    assert a_inv.call_id
    moves = call_events(policy_sbc, a_inv.call_id, "call.failover")
    assert [(e.get("status"), e.get("trunk")) for e in moves] == [(503, "pbx2")], moves


def test_no_failover_once_the_caller_has_early_media(
    policy_sbc: SbcProcess, tmp_path: Path
) -> None:
    """pbx sends 183 with SDP, then 503: the caller already hears pbx, so the
    failure goes to the caller and pbx2 is never tried."""
    failing = callee(
        policy_sbc,
        "pbx",
        "uas_early_media_failure",
        tmp_path,
        keys={"status_line": "SIP/2.0 503 Service Unavailable"},
    )
    idle = callee(policy_sbc, "pbx2", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_failure", "5559876", tmp_path)
    (pbx,), uac, (pbx2,) = run_calls([failing], caller, idle=[idle])
    assert_ok(uac, pbx)
    assert 183 in uac.statuses("INVITE")
    assert finals(uac) == [503], uac.describe()
    assert not pbx2.received, "no failover after early media:\n" + pbx2.describe()


def test_group_tries_every_member_once(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """A weighted group is an order drawn per call: whichever goes first, both
    members get exactly one INVITE, and the last failure reaches the caller."""
    keys = {"status_line": "SIP/2.0 503 Service Unavailable"}
    one = callee(policy_sbc, "pbx", "uas_failure", tmp_path, keys=keys)
    two = callee(policy_sbc, "pbx2", "uas_failure", tmp_path, keys=keys)
    caller = carrier_call(policy_sbc, "uac_failure", "5590000", tmp_path)
    (pbx, pbx2), uac, _ = run_calls([one, two], caller)
    assert_ok(uac, pbx, pbx2)
    assert len(pbx.requests("INVITE", "received")) == 1
    assert len(pbx2.requests("INVITE", "received")) == 1
    assert finals(uac) == [503], uac.describe()


def test_trunk_down_by_options_is_skipped(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """pbx-probed never answers its OPTIONS (connection refused): once marked
    down, routing skips it, so the call goes straight to pbx2 (no failover)."""
    down = policy_sbc.wait_log_event({"trunk.down"}, since=0, trunk="pbx-probed")
    assert down is not None, "pbx-probed was never marked down"
    answering = callee(policy_sbc, "pbx2", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_basic", "5601234", tmp_path)
    (pbx2,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, pbx2)
    assert finals(uac) == [200]
    a_inv = first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    assert a_inv.call_id
    assert call_events(policy_sbc, a_inv.call_id, "call.failover") == []


# --------------------------------------------------------------------------
# reject and translation
# --------------------------------------------------------------------------


def test_reject_route_answers_caller_and_creates_no_b_leg(
    policy_sbc: SbcProcess, tmp_path: Path
) -> None:
    idle = callee(policy_sbc, "pbx", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_failure", "19005551234", tmp_path)
    _, uac, (pbx,) = run_calls([], caller, idle=[idle])
    assert_ok(uac)
    assert finals(uac) == [403], uac.describe()
    final = first([m for m in uac.received if m.status == 403], "403")
    assert final.start_line == "SIP/2.0 403 Premium Barred"
    assert not pbx.received, "a rejected call must not reach the PBX:\n" + pbx.describe()


def test_translate_rewrites_request_uri_user(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    answering = callee(policy_sbc, "pbx", "uas_basic", tmp_path)
    caller = carrier_call(policy_sbc, "uac_basic", "00493012345", tmp_path)
    (pbx,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, pbx)
    b_inv = first(pbx.requests("INVITE", "received"), "INVITE at pbx")
    assert uri_user(b_inv.request_uri) == "+493012345", b_inv.start_line
    assert finals(uac) == [200]


# --------------------------------------------------------------------------
# hot reload
# --------------------------------------------------------------------------

CLOSED_ROUTES = """\
routes:
  - {name: carrier-closed, from_trunk: carrier,
     reject: {status: 403, reason: Closed For Maintenance}}
  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}
"""

BROKEN_ROUTES = """\
routes:
  - {name: carrier-open-again, from_trunk: carrier, to: [pbx]}
  - {name: pbx-to-nowhere, from_trunk: pbx, to: [no-such-trunk]}
"""


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition()`` (bounded) until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def closed_call(sbc: SbcProcess, tmp_path: Path) -> SippResult:
    """A new carrier call, expected to be refused by CLOSED_ROUTES."""
    res = carrier_call(sbc, "uac_failure", "4930111", tmp_path, timeout_s=15)
    return res.start(wait_bind=False).wait()


@pytest.mark.slow
def test_hot_reload_while_a_call_is_up(reload_sbc: SbcProcess, tmp_path: Path) -> None:
    sbc = reload_sbc
    # A long call (8 s of talk) set up under the first policy (carrier -> pbx).
    long_callee = callee(sbc, "pbx", "uas_basic", tmp_path)
    long_caller = carrier_call(sbc, "uac_basic", "4930100", tmp_path, duration_ms=8000)
    long_callee.start()
    try:
        long_caller.start(wait_bind=False)
        wait_for(
            lambda: long_callee.result().requests("ACK", "received"),
            "the long call to be established",
        )

        # New rule: carrier calls are refused. The long call is not touched.
        event = sbc.rewrite_policy("routes.yaml", CLOSED_ROUTES)
        assert event["event"] == "policy.reloaded", event
        refused = closed_call(sbc, tmp_path)
        assert refused.ok, refused.describe()
        assert [m.start_line for m in refused.received if (m.status or 0) >= 200] == [
            "SIP/2.0 403 Closed For Maintenance"
        ]
        assert long_caller.running(), "the long call ended before the reload was tested"

        # A bad edit (unknown trunk on line 3) is refused; the last good policy stays.
        event = sbc.rewrite_policy("routes.yaml", BROKEN_ROUTES)
        assert event["event"] == "policy.refused", event
        issues = event.get("issues") or []
        assert any(i.startswith("routes.yaml:3:") and "no-such-trunk" in i for i in issues), issues
        still = closed_call(sbc, tmp_path)
        assert still.ok, still.describe()
        assert finals(still) == [403], "a refused edit must leave the last good policy in force"

        uac = long_caller.wait()
        pbx = long_callee.wait()
    finally:
        long_caller.stop()
        long_callee.stop()
    assert_ok(uac, pbx)
    assert uac.statuses("BYE") == [200], "the long call must end cleanly at the caller"
    assert pbx.requests("BYE", "received"), "the long call's BYE must reach the PBX"
    assert pbx.statuses("BYE", direction="sent") == [200]
    assert sbc.alive()


# --------------------------------------------------------------------------
# topology hiding: whole messages, both directions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("guard", ["auto", "block"])
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_topology_hidden_in_whole_messages(
    request: pytest.FixtureRequest, tmp_path: Path, direction: str, guard: str
) -> None:
    """Each side names its network everywhere it can; nothing of it reaches the
    other side, in any header or body byte, while the identities (user parts)
    still arrive, re-hosted on the SBC's address. The hiding is complete by
    itself: the leak guard never acts, and with ``leak_guard: block`` (where
    anything it caught would fail the call) every message still goes through."""
    sbc: SbcProcess = request.getfixturevalue(
        "policy_sbc" if guard == "auto" else "policy_sbc_block"
    )
    since = sbc.log_offset()
    if direction == "inbound":  # carrier calls the PBX
        caller_ip, caller_net, target = CARRIER_IP, CARRIER_NET, sbc.ext_uri
        callee_trunk, callee_net = "pbx", PBX_NET
        caller_side, callee_side = SBC_EXT_IP, SBC_INT_IP
    else:  # the PBX calls out to the carrier
        caller_ip, caller_net, target = PBX_IP, PBX_NET, sbc.int_uri
        callee_trunk, callee_net = "carrier", CARRIER_NET
        caller_side, callee_side = SBC_INT_IP, SBC_EXT_IP
    callee_ip = sbc.trunk(callee_trunk)[0]
    answering = callee(sbc, callee_trunk, "uas_identity", tmp_path, keys=callee_net)
    caller = Sipp(
        "uac_identity",
        local_ip=caller_ip,
        remote=target,
        service="4930555000",
        keys=caller_net,
        duration_ms=300,
        timeout_s=30,
        workdir=tmp_path,
        name="caller",
    )
    (uas,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, uas)
    assert finals(uac) == [200]
    assert uac.statuses("BYE") == [200]

    # Nothing the callee received names the caller's side (nor the SBC's other face).
    caller_secrets = [caller_ip, caller_side, *caller_net.values(), *dialog_ids(uac)]
    leaked = leaks(uas.received, caller_secrets, part="all")
    assert not leaked, "caller's topology reached the callee:\n" + "\n".join(leaked)
    # Nothing the caller received names the callee's side.
    callee_secrets = [callee_ip, callee_side, *callee_net.values(), *dialog_ids(uas)]
    leaked = leaks(uac.received, callee_secrets, part="all")
    assert not leaked, "callee's topology reached the caller:\n" + "\n".join(leaked)

    # The identities still arrive: user parts kept, hosts the SBC's own.
    b_inv = first(uas.requests("INVITE", "received"), "INVITE at the callee")
    for name, user in (
        ("P-Asserted-Identity", "+4930111222"),
        ("Remote-Party-ID", "+4930111222"),
        ("Diversion", "+4930111333"),
        ("History-Info", "+4930111333"),
    ):
        value = b_inv.header(name)
        assert value is not None, f"{name} did not reach the callee"
        assert f"sip:{user}@{callee_side}" in value, (name, value)
    a_ok = first([m for m in uac.received if m.status == 200 and m.cseq_method == "INVITE"], "200")
    for name, user in (("P-Asserted-Identity", "+4930999000"), ("Remote-Party-ID", "+4930999000")):
        value = a_ok.header(name)
        assert value is not None, f"{name} did not reach the caller"
        assert f"sip:{user}@{caller_side}" in value, (name, value)
    # Headers that only describe a side's network stay home (no pass_headers here).
    home_only = ("Call-Info", "Alert-Info", "Organization", "Warning", "X-Corp-Site")
    for msg in (*uas.received, *uac.received):
        present = [name for name in home_only if msg.header(name) is not None]
        assert not present, (msg.start_line, present)
    caught = [e for e in sbc.log_events(since) if e.get("event") == "topology.leak"]
    assert caught == []


def test_caller_record_route_echoed_in_2xx(policy_sbc: SbcProcess, tmp_path: Path) -> None:
    """The SBC is the UAS of the caller's dialog: a proxy on the caller's side
    that Record-Routed must see itself in the 2xx, or the caller's ACK and BYE
    bypass it while the SBC's requests go through it (asymmetric route set)."""
    answering = callee(policy_sbc, "pbx", "uas_basic", tmp_path)
    caller = Sipp(
        "uac_identity",
        local_ip=CARRIER_IP,
        remote=policy_sbc.ext_uri,
        service="4930555000",
        keys=CARRIER_NET,
        duration_ms=300,
        timeout_s=30,
        workdir=tmp_path,
        name="caller",
    )
    (pbx,), uac, _ = run_calls([answering], caller)
    assert_ok(uac, pbx)
    a_inv = first(uac.requests("INVITE", "sent"), "INVITE sent by the caller")
    a_ok = first([m for m in uac.received if m.status == 200 and m.cseq_method == "INVITE"], "200")
    assert a_inv.header_all("Record-Route")
    assert a_ok.header_all("Record-Route") == a_inv.header_all("Record-Route")
