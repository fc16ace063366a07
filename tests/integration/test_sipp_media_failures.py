"""When media stops — no RTP for the inactivity timeout, or the relay worker
carrying the call dies — the SBC ends the call with BYE on both legs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp, SippResult

pytestmark = pytest.mark.integration


def _call_ended_by_sbc(sbc: SbcProcess, tmp_path: Path) -> tuple[Sipp, Sipp]:
    """A call that only the SBC can end: neither SIPp sends BYE itself."""
    uas = Sipp(
        "uas_basic", local_ip=PBX_IP, local_port=sbc.ports.pbx, timeout_s=40, workdir=tmp_path
    )
    uac = Sipp(
        "uac_callee_bye",
        local_ip=CARRIER_IP,
        local_port=sbc.ports.carrier,
        remote=sbc.ext_uri,
        timeout_s=40,
        workdir=tmp_path,
    )
    uas.start()
    uac.start()
    return uac, uas


def _assert_both_byed(uac: Sipp, uas: Sipp, reason: str) -> None:
    caller: SippResult = uac.wait(30)
    callee: SippResult = uas.wait(30)
    assert caller.returncode == 0, caller.describe()
    assert callee.returncode == 0, callee.describe()
    for result in (caller, callee):
        (bye,) = result.requests("BYE", "received")
        assert reason in (bye.header("Reason") or ""), bye


def test_media_inactivity_ends_the_call(tmp_path: Path) -> None:
    sbc = SbcProcess(
        tmp_path / "sbc",
        extra_sbc_yaml="media: {inactivity_timeout_s: 2, workers: 1}\n",
    )
    sbc.start()
    try:
        uac, uas = _call_ended_by_sbc(sbc, tmp_path)
        _assert_both_byed(uac, uas, "media inactivity")
    finally:
        sbc.stop()


def _worker_pids(parent: int) -> list[int]:
    """The relay workers: children of the SBC running multiprocessing's spawn main."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_dead_media_worker_ends_its_calls(tmp_path: Path) -> None:
    sbc = SbcProcess(tmp_path / "sbc", extra_sbc_yaml="media: {workers: 1}\n")
    sbc.start()
    try:
        assert sbc.pid is not None
        uac, uas = _call_ended_by_sbc(sbc, tmp_path)
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline and b'"call.answered"' not in sbc.stdout_path.read_bytes()
        ):
            time.sleep(0.05)
        workers = _worker_pids(sbc.pid)
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)  # a process we started, by PID
        _assert_both_byed(uac, uas, "media worker died")
        assert sbc.alive()
    finally:
        sbc.stop()
