"""Legitimate calls through the SBC while attackers flood it (issue 11).

SIPp carries calls carrier → SBC → PBX at a steady rate while attacker
processes (``attackers.py``), each on its own loopback address, run every
attack class at once: oversized datagrams, header bombs, garbage, malformed
and plain STUN at the relay ports, a TCP connection flood with half-sent
messages, INVITEs with bogus credentials spoofed from a ``require_auth``
trunk's address, and reflection attempts at unknown dialogs. The calls must
all complete (>= 99.9 %), the SBC's memory must stay bounded, the attackers
must get nothing bigger than what they sent, and the flooded trunk must still
be served afterwards.

The attackers are rate-capped (the machine has two cores that SIPp, the SBC
and the attackers share): this test is about correctness under attack;
``bench/hostile.py`` measures what full-speed attacks cost.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attackers import can_spoof
from harness import (
    CARRIER_IP,
    PBX_IP,
    SbcProcess,
    Sipp,
    TrunkDef,
    options_ping,
    read_rss_kib,
    serving,
)

pytestmark = pytest.mark.slow

ATTACKERS = Path(__file__).resolve().parent / "attackers.py"
BRANCH_IP = "127.0.0.30"
SECRET_ENV = "SBC_TEST_BRANCH_SECRET"
CALLS, RATE = 200, 10  # 20 s of calls
ATTACK_S = 24.0
#: Growth of the SBC's RSS allowed over the whole attack (it starts near 100 MiB).
RSS_GROWTH_LIMIT_KIB = 64 * 1024


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    branch = TrunkDef(
        "branch",
        "external",
        BRANCH_IP,
        extra=f"require_auth: {{realm: hostile, users: {{b1: {{env: {SECRET_ENV}}}}}}}",
    )
    yield from serving(
        SbcProcess(
            tmp_path_factory.mktemp("sbc-hostile"),
            extra_trunks=[branch],
            media_pairs=40,
        ),
        env={SECRET_ENV: "branch-secret"},
    )


def _attack(sbc: SbcProcess, attack: str, source: str, rate: int, **options: str) -> list[str]:
    argv = [
        sys.executable,
        str(ATTACKERS),
        attack,
        "--target",
        sbc.ext_uri,
        "--source",
        source,
        "--duration",
        str(ATTACK_S),
        "--rate",
        str(rate),
    ]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", value]
    return argv


def test_calls_complete_while_every_attack_class_runs(sbc: SbcProcess, tmp_path: Path) -> None:
    media_low, media_high = sbc.media_ports["external"]
    branch_port = sbc.trunk("branch")[1]
    attacks = [
        _attack(sbc, "oversized", "127.0.0.66", 200),
        _attack(sbc, "header_bomb", "127.0.0.67", 200),
        _attack(sbc, "garbage", "127.0.0.68", 300),
        _attack(sbc, "stun", "127.0.0.69", 500, media_ports=f"{media_low}-{media_high}"),
        _attack(sbc, "tcp_flood", "127.0.0.70", 20, connections="300"),
        _attack(sbc, "unknown_dialog", "127.0.0.72", 200),
    ]
    if can_spoof():
        attacks.append(
            _attack(
                sbc,
                "spoofed_auth",
                "127.0.0.71",
                300,
                spoof=f"{BRANCH_IP}:{branch_port}",
                realm="hostile",
            )
        )
    rss_before = read_rss_kib(sbc.pid or 0)
    callee = Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        calls=CALLS,
        timeout_s=90,
        workdir=tmp_path,
        trace_msg=False,
    )
    caller = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        calls=CALLS,
        rate=RATE,
        duration_ms=500,
        timeout_s=90,
        workdir=tmp_path,
        trace_msg=False,
    )
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, text=True) for a in attacks]
    try:
        time.sleep(2.0)  # the attacks are under way before the first call
        callee.start()
        caller.start(wait_bind=False)
        called = caller.wait()
        callee.wait(10.0)
        rss_during = read_rss_kib(sbc.pid or 0)
        reports = [
            json.loads(p.communicate(timeout=ATTACK_S + 30)[0].splitlines()[-1]) for p in procs
        ]
    finally:
        caller.stop()
        callee.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sbc.alive()
    ok = called.counter("Successful call") or 0
    assert ok >= 0.999 * CALLS, f"{ok}/{CALLS} calls completed\n{called.describe()}"
    assert rss_during - rss_before < RSS_GROWTH_LIMIT_KIB, (rss_before, rss_during)
    by_attack = {r["attack"]: r for r in reports}
    for attack, report in by_attack.items():
        assert report["sent"] > 0, report
        # Nothing reflected back is bigger than what the attacker sent (amplification).
        assert report["bytes_answered"] <= report["bytes_sent"], (attack, report)
    assert by_attack["stun"]["answers"] == 0, "the relay answered STUN from a stranger"
    # The flooded trunk's own address is still served: spoofed auth failures
    # must not have banned it (OPTIONS is answered without credentials).
    assert options_ping(BRANCH_IP, sbc.ext) == 200
