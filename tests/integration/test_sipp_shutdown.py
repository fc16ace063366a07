"""SIGTERM drains the SBC: new calls get 503 + Retry-After, established calls
keep going for the grace period, then both ends receive BYE and the process
exits cleanly."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    SbcProcess,
    Sipp,
    sip_status,
    udp_exchange,
)

pytestmark = pytest.mark.integration

GRACE_S = 2


def _invite(target: str, src_ip: str) -> bytes:
    tag = uuid.uuid4().hex[:8]
    return (
        f"INVITE sip:100@{target} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src_ip}:5999;branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:drain@{src_ip}>;tag={tag}\r\n"
        f"To: <sip:100@{target}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:drain@{src_ip}:5999>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_sigterm_drains_then_byes_both_legs(tmp_path: Path) -> None:
    sbc = SbcProcess(tmp_path / "sbc", extra_sbc_yaml=f"calls: {{shutdown_grace_s: {GRACE_S}}}\n")
    sbc.start()
    uas = Sipp(
        "uas_basic", local_ip=PBX_IP, local_port=sbc.ports.pbx, timeout_s=30, workdir=tmp_path
    )
    # The caller waits for a BYE it never sends itself: only the SBC can end the call.
    uac = Sipp(
        "uac_callee_bye",
        local_ip=CARRIER_IP,
        local_port=sbc.ports.carrier,
        remote=sbc.ext_uri,
        timeout_s=30,
        workdir=tmp_path,
    )
    try:
        uas.start()
        uac.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and '"call.answered"' not in _log(sbc):
            time.sleep(0.05)
        assert '"call.answered"' in _log(sbc), "the call was not established"

        assert sbc.proc is not None
        sbc.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        replies = udp_exchange(CARRIER_IP, sbc.ext, _invite(sbc.ext_uri, CARRIER_IP))
        finals = [r for r in replies if (sip_status(r) or 0) >= 200]
        assert finals, "no answer to an INVITE while draining"
        assert sip_status(finals[0]) == 503
        assert b"Retry-After:" in finals[0]
        assert sbc.alive(), "the SBC must wait for the grace period"

        caller = uac.wait(GRACE_S + 15)
        callee = uas.wait(GRACE_S + 15)
        assert caller.returncode == 0, caller.describe()
        assert callee.returncode == 0, callee.describe()
        assert len(caller.requests("BYE", "received")) == 1
        assert len(callee.requests("BYE", "received")) == 1
        sbc.proc.wait(timeout=10)
        assert sbc.proc.returncode == 0
        assert '"sbc.stopped"' in _log(sbc)
    finally:
        uac.stop()
        uas.stop()
        sbc.stop()


def _log(sbc: SbcProcess) -> str:
    return sbc.stdout_path.read_text(errors="replace")
