"""Security and admission with real peers: a flood, sipvicious scans, call limits.

Topology (loopback): the legitimate carrier SIPp on 127.0.0.10 and three more
carrier trunks on the SBC's external interface, each with its own SIPp:
``flooder`` (127.0.0.11, a per-trunk INVITE rate limit in security.yaml),
``limited`` (127.0.0.12, ``max_calls: 2``) and ``paced`` (127.0.0.13,
``max_cps: 1``); every one of them routes to the PBX SIPp on 127.0.0.20.
Strangers (no trunk) are 127.0.0.96-99: they meet the per-source limits and
the scanner User-Agent list (docs/security.md, "What happens to a request").

What each side received is read from SIPp's message logs; bans from the
SBC's JSON log (``guard.banned``) and, from outside, from the silence a
banned source gets where any other stranger still gets 403.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    SBC_EXT_IP,
    STRANGER_IP,
    SbcProcess,
    SipMessage,
    Sipp,
    SippResult,
    TrunkDef,
    options_ping,
    options_request,
    serving,
    sip_status,
)

pytestmark = pytest.mark.integration

FLOODER_IP = "127.0.0.11"
LIMITED_IP = "127.0.0.12"
PACED_IP = "127.0.0.13"
TRICKLE_IP = "127.0.0.14"
SCANNER_IP = STRANGER_IP  # 127.0.0.99: svmap binds here
BYSTANDER_IP = "127.0.0.98"  # a stranger who never scanned
HAMMER_IP = "127.0.0.97"  # a stranger who floods INVITEs
WARDIALER_IP = "127.0.0.96"  # asked of svwar, which does not honour it (see its test)

# The flooder's per-trunk INVITE bucket (rate/s, burst) and how hard it is hammered.
FLOOD_RATE = 5
FLOOD_BURST = 5
FLOOD_FACTOR = 10
FLOOD_SECONDS = 12
FLOOD_CALLS = FLOOD_RATE * FLOOD_FACTOR * FLOOD_SECONDS
# The legitimate carrier places calls at a steady rate over the same period.
LEGIT_CPS = 10
LEGIT_CALLS = LEGIT_CPS * FLOOD_SECONDS

# Strangers: a small INVITE bucket and few strikes, so a ban comes quickly.
STRANGER_INVITE_BURST = 5
STRIKES = 10
RETRY_AFTER_S = 5

SECURITY_YAML = f"""\
rate_limits:
  per_source:
    INVITE: {{rate: 1, burst: {STRANGER_INVITE_BURST}}}
  per_trunk:
    flooder:
      INVITE: {{rate: {FLOOD_RATE}, burst: {FLOOD_BURST}}}
    trickle:
      INVITE: {{rate: 0.01, burst: 1}}
limited: {{action: reject, retry_after_s: {RETRY_AFTER_S}}}
bans: {{strikes: {STRIKES}, window_s: 60, duration_s: 600}}
"""

ROUTES_YAML = """\
routes:
  - {name: carrier-to-pbx, from_trunk: carrier, to: [pbx]}
  - {name: flooder-to-pbx, from_trunk: flooder, to: [pbx]}
  - {name: limited-to-pbx, from_trunk: limited, to: [pbx]}
  - {name: paced-to-pbx, from_trunk: paced, to: [pbx]}
  - {name: trickle-closed, from_trunk: trickle, reject: {status: 480, reason: Closed}}
  - {name: pbx-to-carrier, from_trunk: pbx, to: [carrier]}
"""

TRUNKS = (
    TrunkDef("flooder", "external", FLOODER_IP),
    TrunkDef("limited", "external", LIMITED_IP, extra="max_calls: 2"),
    TrunkDef("paced", "external", PACED_IP, extra="max_cps: 1"),
    TrunkDef("trickle", "external", TRICKLE_IP),
)


@pytest.fixture(scope="module")
def guarded_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """One SBC for the module; bans last 10 minutes, so each test bans its own IPs."""
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-security"),
        routes_yaml=ROUTES_YAML,
        extra_trunks=TRUNKS,
        extra_files={"security.yaml": SECURITY_YAML},
    )
    yield from serving(sbc)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def pbx(sbc: SbcProcess, tmp: Path, calls: int = 1000) -> Sipp:
    """The PBX SIPp; ``calls`` is a ceiling, it is stopped once the callers end."""
    return Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        calls=calls,
        duration_ms=200,
        timeout_s=60,
        workdir=tmp,
        name="pbx",
    )


def caller(
    sbc: SbcProcess,
    ip: str,
    tmp: Path,
    *,
    scenario: str = "uac_answered_or_refused",
    service: str = "4930100",
    **kw: Any,
) -> Sipp:
    """A SIPp UAC on a trunk's address calling the SBC's external interface."""
    kw.setdefault("timeout_s", 45)
    return Sipp(scenario, local_ip=ip, remote=sbc.ext_uri, service=service, workdir=tmp, **kw)


def run_callers(pbx_sipp: Sipp, *callers: Sipp) -> tuple[SippResult, list[SippResult]]:
    """Start the PBX, then the callers together; wait for the callers, stop the PBX.

    The PBX answers every BYE before the caller hears the 200 for it, so once
    the callers are done the PBX has nothing left to do.
    """
    pbx_sipp.start()
    try:
        for sipp in callers:
            sipp.start(wait_bind=False)
        results = [sipp.wait() for sipp in callers]
    finally:
        for sipp in callers:
            sipp.stop()
        pbx_res = pbx_sipp.stop()
    return pbx_res, results


def final_by_call(res: SippResult) -> dict[str, list[SipMessage]]:
    """The final INVITE responses each call received, by Call-ID."""
    out: dict[str, list[SipMessage]] = {}
    for msg in res.responses("INVITE", "received"):
        if (msg.status or 0) >= 200 and msg.call_id:
            out.setdefault(msg.call_id, []).append(msg)
    return out


def calls_started(res: SippResult) -> set[str]:
    """Call-IDs of the INVITEs a UAC sent (retransmissions count once)."""
    return {m.call_id for m in res.requests("INVITE", "sent") if m.call_id}


def invites_received(res: SippResult) -> set[str]:
    """Call-IDs of the INVITEs a UAS received: one per B-leg the SBC created."""
    return {m.call_id for m in res.requests("INVITE", "received") if m.call_id}


def split_answers(res: SippResult) -> tuple[set[str], list[SipMessage], list[str]]:
    """(answered Call-IDs, the 503s, anything else) of a uac_answered_or_refused run."""
    answered: set[str] = set()
    refused: list[SipMessage] = []
    other: list[str] = []
    for call_id, finals in final_by_call(res).items():
        statuses = {m.status for m in finals}
        if statuses == {200}:
            answered.add(call_id)
        elif statuses == {503}:
            refused.append(finals[0])
        else:
            other.append(f"{call_id}: {sorted(s or 0 for s in statuses)}")
    return answered, refused, other


def with_user_agent(request: bytes, user_agent: str) -> bytes:
    return request.replace(
        b"Content-Length:", f"User-Agent: {user_agent}\r\nContent-Length:".encode()
    )


def stranger_answers(src_ip: str, sbc: SbcProcess, user_agent: str = "Linphone/5.2.0") -> list[int]:
    """Statuses a stranger's OPTIONS (ordinary User-Agent) gets within a second."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src_ip, 0))
        port = s.getsockname()[1]
        request = options_request(sbc.ext_uri, src_ip, port)
        s.sendto(with_user_agent(request, user_agent), sbc.ext)
        return [st for st in map(sip_status, collect(s, quiet=1.0)) if st is not None]


def collect(s: socket.socket, *, quiet: float, limit: float = 5.0) -> list[bytes]:
    """Datagrams arriving on ``s`` until ``quiet`` seconds pass without one (bounded)."""
    out: list[bytes] = []
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(min(quiet, left))
        try:
            out.append(s.recv(65535))
        except TimeoutError:
            break
    return out


def invite_request(target: str, src_ip: str, src_port: int, user: str) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    return (
        f"INVITE sip:{user}@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src_ip}:{src_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:caller@{src_ip}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{user}@{target}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:caller@{src_ip}:{src_port}>\r\n"
        "User-Agent: Grandstream GXP2170\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def run_tool(cmd: list[str], limit_s: int) -> str:
    """Run a sipvicious tool, bounded by coreutils ``timeout``; stdout + stderr."""
    done = subprocess.run(
        ["timeout", "-k", "2", str(limit_s), *cmd],
        capture_output=True,
        text=True,
        check=False,
        timeout=limit_s + 10,
    )
    return done.stdout + done.stderr


def bans_since(sbc: SbcProcess, since: int) -> list[dict[str, object]]:
    return [e for e in sbc.log_events(since) if e.get("event") == "guard.banned"]


# --------------------------------------------------------------------------
# flood
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_flooding_trunk_is_held_to_its_limit_while_legitimate_calls_complete(
    guarded_sbc: SbcProcess, tmp_path: Path
) -> None:
    """The issue: "one source at 10x its limit while a legitimate source keeps
    placing calls - the legitimate calls complete >= 99.9%".

    The flooder is a *trunk* with a per-trunk INVITE limit, not a stranger
    with the per-source one: a source that "places calls" and has "its limit"
    is a peer allowed to call, and a trunk is never banned (docs/security.md),
    so the SBC must keep parsing and answering the flood for the whole run
    instead of silencing it after its first strikes (that case is
    ``test_stranger_over_its_limit_is_banned_into_silence``). Every INVITE
    over the bucket gets a stateless 503 + Retry-After, and no B-leg.
    """
    sbc = guarded_sbc
    since = sbc.log_offset()
    callee = pbx(sbc, tmp_path, calls=10 * (LEGIT_CALLS + FLOOD_CALLS))
    legit = caller(
        sbc,
        CARRIER_IP,
        tmp_path,
        scenario="uac_basic",
        calls=LEGIT_CALLS,
        rate=LEGIT_CPS,
        duration_ms=1000,
        name="legit",
    )
    flood = caller(
        sbc,
        FLOODER_IP,
        tmp_path,
        service="4930666",
        calls=FLOOD_CALLS,
        rate=FLOOD_RATE * FLOOD_FACTOR,
        duration_ms=200,
        name="flooder",
    )
    began = time.monotonic()
    pbx_res, (legit_res, flood_res) = run_callers(callee, legit, flood)
    # The flood's INVITEs all reached the SBC inside this span (it ends after
    # the flooder's last answer), so its bucket gave out at most this many.
    span = time.monotonic() - began
    most_admitted = FLOOD_BURST + int(FLOOD_RATE * span)

    # The legitimate carrier: >= 99.9 % of its calls complete, none refused.
    assert legit_res.ok, legit_res.describe()
    completed = legit_res.counter("Successful call") or 0
    assert completed / LEGIT_CALLS >= 0.999, legit_res.describe()
    assert legit_res.counter("Failed call") == 0, legit_res.describe()
    assert 503 not in legit_res.statuses("INVITE")

    # The flooder: every INVITE answered, at most its bucket's worth with 200,
    # all the others 503 with Retry-After.
    assert flood_res.ok, flood_res.describe()
    assert len(calls_started(flood_res)) == FLOOD_CALLS
    answered, refused, other = split_answers(flood_res)
    assert not other, other
    assert len(answered) + len(refused) == FLOOD_CALLS
    assert FLOOD_BURST <= len(answered) <= most_admitted, (len(answered), span)
    assert len(refused) >= FLOOD_CALLS - most_admitted
    assert {m.header("Retry-After") for m in refused} == {str(RETRY_AFTER_S)}

    # The PBX saw the legitimate calls and the flooder's admitted ones only:
    # a refused INVITE creates no B-leg.
    assert len(invites_received(pbx_res)) == LEGIT_CALLS + len(answered), pbx_res.describe()

    # A trunk is never banned for its rate, and the SBC is still serving.
    assert [e for e in bans_since(sbc, since) if e.get("source") == FLOODER_IP] == []
    assert sbc.alive()
    assert options_ping(CARRIER_IP, sbc.ext) == 200


def test_stranger_over_its_limit_is_banned_into_silence(guarded_sbc: SbcProcess) -> None:
    """A stranger's INVITEs within its bucket get 403 (no trunk); each one over
    it is a strike answered 503; the STRIKES-th strike bans it, and from then
    on it hears nothing (banned.action: drop)."""
    sbc = guarded_sbc
    since = sbc.log_offset()
    sent = 4 * (STRANGER_INVITE_BURST + STRIKES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HAMMER_IP, 0))
        port = s.getsockname()[1]
        for n in range(sent):
            s.sendto(invite_request(sbc.ext_uri, HAMMER_IP, port, f"49301{n:02d}"), sbc.ext)
        statuses = [sip_status(d) for d in collect(s, quiet=1.0)]

    assert set(statuses) <= {403, 503}, statuses
    # Every strike but the one that bans is answered; the bucket's tokens
    # (the burst, and any refilled meanwhile) are 403s; the rest is silence.
    assert statuses.count(503) == STRIKES - 1, statuses
    assert statuses.count(403) >= STRANGER_INVITE_BURST, statuses
    assert len(statuses) < sent
    ban = sbc.wait_log_event({"guard.banned"}, since, timeout=5, source=HAMMER_IP)
    assert ban is not None, bans_since(sbc, since)
    assert ban.get("reason") == "rate", ban
    assert stranger_answers(HAMMER_IP, sbc) == []
    assert sbc.alive()


# --------------------------------------------------------------------------
# sipvicious
# --------------------------------------------------------------------------


def test_svmap_scan_bans_the_scanner(guarded_sbc: SbcProcess) -> None:
    """svmap (OPTIONS, User-Agent ``friendly-scanner``) from a stranger: banned
    on its first request and never answered, so it finds no SIP device; a
    banned source stays silent even with an ordinary User-Agent, while any
    other stranger still gets 403."""
    sbc = guarded_sbc
    assert stranger_answers(SCANNER_IP, sbc) == [403], "before the scan: a stranger gets 403"
    since = sbc.log_offset()
    port = sbc.ports.ext
    output = run_tool(["svmap", "-b", SCANNER_IP, "-p", str(port), SBC_EXT_IP], limit_s=20)

    ban = sbc.wait_log_event({"guard.banned"}, since, timeout=5, source=SCANNER_IP)
    assert ban is not None, bans_since(sbc, since)
    assert ban.get("reason") == "scanner"
    assert "found nothing" in output, output
    assert f"{SBC_EXT_IP}:{port}" not in output, output
    assert "SIP Device" not in output, output

    assert stranger_answers(SCANNER_IP, sbc) == [], "a banned source must get no answer"
    assert stranger_answers(BYSTANDER_IP, sbc) == [403], "other strangers are not banned"
    assert sbc.alive()


def test_svwar_learns_no_extension(guarded_sbc: SbcProcess) -> None:
    """svwar (REGISTER enumeration of 100-110) is banned on its first request:
    its sanity check gets no answer, so it gives up having found nothing.

    sipvicious 0.3.3's svwar parses ``-b`` but never passes it on (TakeASip
    is built without ``bindingip``), so its socket is unbound and on loopback
    its packets come from 127.0.0.1, whatever ``-b`` says: the ban may name
    either address.
    """
    sbc = guarded_sbc
    since = sbc.log_offset()
    port = sbc.ports.ext
    cmd = ["svwar", "-b", WARDIALER_IP, "-p", str(port), "-e100-110", SBC_EXT_IP]
    output = run_tool(cmd, limit_s=20)

    bans = bans_since(sbc, since)
    assert [e.get("reason") for e in bans] == ["scanner"], bans
    assert bans[0].get("source") in {WARDIALER_IP, "127.0.0.1"}, bans
    assert "found nothing" in output, output
    assert "Extension" not in output, output
    for ext in range(100, 111):
        assert f"| {ext} " not in output, output
    assert sbc.alive()


# --------------------------------------------------------------------------
# admission
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_trunk_call_limit_refuses_extra_calls_without_b_leg(
    guarded_sbc: SbcProcess, tmp_path: Path
) -> None:
    """``limited`` has ``max_calls: 2``: of 5 calls placed at once (3 s each),
    2 reach the PBX, 3 get 503 "Trunk Limit Reached" with Retry-After and no
    B-leg; once the 2 have ended, a new call passes."""
    sbc = guarded_sbc
    burst = caller(
        sbc, LIMITED_IP, tmp_path, calls=5, rate=10, limit=5, duration_ms=3000, name="limited"
    )
    pbx_res, (res,) = run_callers(pbx(sbc, tmp_path), burst)
    assert res.ok, res.describe()
    answered, refused, other = split_answers(res)
    assert not other, other
    assert len(answered) == 2, res.describe()
    assert len(refused) == 3, res.describe()
    for msg in refused:
        assert msg.start_line == "SIP/2.0 503 Trunk Limit Reached"
        assert msg.header("Retry-After") == "5"
    assert len(invites_received(pbx_res)) == 2, pbx_res.describe()

    later = caller(sbc, LIMITED_IP, tmp_path, calls=1, duration_ms=200, name="limited-later")
    pbx_res, (res,) = run_callers(pbx(sbc, tmp_path), later)
    assert res.ok, res.describe()
    answered, refused, _ = split_answers(res)
    assert (len(answered), len(refused)) == (1, 0), res.describe()
    assert len(invites_received(pbx_res)) == 1


def test_trunk_call_rate_limit_admits_one_of_a_burst(
    guarded_sbc: SbcProcess, tmp_path: Path
) -> None:
    """``paced`` has ``max_cps: 1`` (a bucket of one call, refilled each second):
    5 calls sent within ~40 ms, 1 passes, 4 get 503 "Call Rate Limit"."""
    sbc = guarded_sbc
    burst = caller(
        sbc,
        PACED_IP,
        tmp_path,
        calls=5,
        rate=5,
        rate_period_ms=50,
        limit=5,
        duration_ms=200,
        name="paced",
    )
    pbx_res, (res,) = run_callers(pbx(sbc, tmp_path), burst)
    assert res.ok, res.describe()
    answered, refused, other = split_answers(res)
    assert not other, other
    assert (len(answered), len(refused)) == (1, 4), res.describe()
    for msg in refused:
        assert msg.start_line == "SIP/2.0 503 Call Rate Limit"
        assert msg.header("Retry-After") == "5"
    assert len(invites_received(pbx_res)) == 1, pbx_res.describe()


# --------------------------------------------------------------------------
# retransmissions
# --------------------------------------------------------------------------


def test_retransmitted_invite_is_not_refused_by_the_rate_limit(guarded_sbc: SbcProcess) -> None:
    """``trickle`` may send one INVITE per 100 s; its route answers 480. The
    INVITE's retransmission is the same transaction, not a new request: the
    server transaction must absorb it and resend its 480 (RFC 3261 §17.2.1,
    Completed state), never answer it with a second, different final response."""
    sbc = guarded_sbc
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((TRICKLE_IP, 0))
        port = s.getsockname()[1]
        invite = invite_request(sbc.ext_uri, TRICKLE_IP, port, "4930777")
        s.sendto(invite, sbc.ext)
        first_answers = [sip_status(d) for d in collect(s, quiet=0.4)]
        s.sendto(invite, sbc.ext)  # the retransmission: same branch, same bytes
        again = [sip_status(d) for d in collect(s, quiet=0.4)]
    assert 480 in first_answers, first_answers
    assert 503 not in again, f"first: {first_answers}, after the retransmission: {again}"
    assert 480 in again, again
