"""The kernel filter (nftables) in front of the running SBC.

- (a) a stranger banned by the guard (a scanner User-Agent) has its later
  datagrams and TCP connections dropped in the kernel: its element is in the
  SBC's table, the SBC's own received counter stands still while the
  attacker keeps sending, the table's ``banned`` counter counts them;
- (b) a stranger sending far above its packet-rate ceiling has most of its
  datagrams dropped in the kernel while the carrier's SIPp calls complete;
- (c) the table is rebuilt on a policy reload (new ceiling, the bans kept)
  and gone once the SBC stops, by SIGTERM or SIGKILL;
- (d) ``kernel_filter: off`` leaves no table;
- (e) without CAP_NET_ADMIN (``setpriv`` drops it), ``auto`` starts and says
  why it runs in userspace only, ``on`` refuses to start (exit status 3).

What the SBC read comes from its ``/metrics``; what the kernel holds from
``nft -j list``. Needs root (nftables) and the ``nft`` program.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import (
    CARRIER_IP,
    PBX_IP,
    REPO_ROOT,
    SbcProcess,
    Sipp,
    options_ping,
    options_request,
    serving,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="nftables needs root"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft (Debian nftables) absent"),
]

TOKEN = "kernel-filter-admin-token-0123456789abcdef"
SCANNER_IP = "127.0.0.71"
FLOODER_IP = "127.0.0.72"
CEILING = 200  # stranger_pps and stranger_burst of the module's SBC
FLOOD = 20_000  # datagrams the flooder sends, as fast as it can
WAIT_S = 15.0
SECURITY = (
    "bans: {strikes: null}\n"  # (b) measures the ceiling alone: no ban cuts the flood short
    f"kernel_filter: {{mode: on, stranger_pps: {CEILING}, stranger_burst: {CEILING}}}\n"
)


def table(sbc: SbcProcess) -> str:
    return f"sbc_{sbc.pid}"


def nft_json(*args: str) -> Any:
    done = subprocess.run(
        ["nft", "-j", "list", *args], capture_output=True, text=True, check=False, timeout=30
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def nft_text(*args: str) -> str:
    done = subprocess.run(
        ["nft", "list", *args], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout


def tables() -> set[str]:
    """Names of the inet tables (text: nft 1.0.6's JSON garbles an owner table's flags)."""
    return set(re.findall(r"^table inet (\S+)", nft_text("tables"), re.MULTILINE))


def set_elements(sbc: SbcProcess, name: str) -> list[Any]:
    listing = nft_json("set", "inet", table(sbc), name) or {"nftables": []}
    for item in listing["nftables"]:
        if "set" in item:
            return [
                e["elem"]["val"] if isinstance(e, dict) else e for e in item["set"].get("elem", [])
            ]
    return []


def metrics(sbc: SbcProcess) -> dict[str, float]:
    response = httpx.get(
        f"{sbc.admin_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0
    )
    response.raise_for_status()
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def dropped(sbc: SbcProcess, reason: str) -> float:
    return metrics(sbc).get(f'sbc_kernel_filter_dropped_total{{reason="{reason}"}}', 0.0)


def received(sbc: SbcProcess) -> float:
    return metrics(sbc)["sbc_sip_messages_received_total"]


def eventually(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module", autouse=True)
def no_stale_tables() -> Iterator[None]:
    """Whatever happens to the SBCs, no table of a dead process is left behind
    (tables are ``flags owner``: the kernel removes them with their process;
    this deletes any that an older build left)."""
    yield
    for name in tables():
        match = re.fullmatch(r"sbc_(\d+)", name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            subprocess.run(["nft", "delete", "table", "inet", name], check=False)
        except PermissionError:
            pass  # alive, someone else's


@pytest.fixture(scope="module")
def kernel_sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    sbc = SbcProcess(
        tmp_path_factory.mktemp("sbc-kernel"),
        admin_token=TOKEN,
        extra_files={"security.yaml": SECURITY},
    )
    yield from serving(sbc)


def scanner_options(sbc: SbcProcess, port: int) -> bytes:
    request = options_request(sbc.ext_uri, SCANNER_IP, port)
    return request.replace(b"\r\n\r\n", b"\r\nUser-Agent: friendly-scanner\r\n\r\n", 1)


def test_a_banned_stranger_is_dropped_in_the_kernel(kernel_sbc: SbcProcess) -> None:
    """(a) One scanner OPTIONS bans it; its ban is in the table within a couple of
    seconds; after that nothing it sends reaches the SBC, over UDP or TCP."""
    sbc = kernel_sbc
    since = sbc.log_offset()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((SCANNER_IP, 0))
        port = s.getsockname()[1]
        s.sendto(scanner_options(sbc, port), sbc.ext)
        assert sbc.wait_log_event({"guard.banned"}, since, source=SCANNER_IP) is not None
        assert eventually(lambda: SCANNER_IP in set_elements(sbc, "banned4_32")), set_elements(
            sbc, "banned4_32"
        )
        before, kernel_before = received(sbc), dropped(sbc, "banned")
        for _ in range(200):
            s.sendto(scanner_options(sbc, port), sbc.ext)
        assert eventually(lambda: dropped(sbc, "banned") >= kernel_before + 200), metrics(sbc)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((SCANNER_IP, 0))
        tcp.settimeout(1.0)
        with pytest.raises(TimeoutError):  # its SYNs are dropped: no answer at all
            tcp.connect(sbc.ext)
    samples = metrics(sbc)
    assert samples["sbc_sip_messages_received_total"] == before  # not one more datagram
    assert samples['sbc_transport_connections_refused_total{reason="screened"}'] == 0
    assert samples["sbc_kernel_filter_up"] == 1
    assert samples["sbc_kernel_filter_bans"] >= 1


def test_a_flood_over_the_ceiling_is_dropped_in_the_kernel_while_calls_complete(
    kernel_sbc: SbcProcess, tmp_path: Path
) -> None:
    """(b) A stranger at full speed: beyond its burst and rate (both CEILING), its
    datagrams die in the kernel; the carrier (a trunk: its own, higher ceiling)
    completes every call meanwhile."""
    sbc = kernel_sbc
    rate_before, received_before = dropped(sbc, "rate"), received(sbc)
    caller = Sipp(
        "uac_basic",
        local_ip=CARRIER_IP,
        remote=sbc.ext_uri,
        service="4930100",
        calls=20,
        rate=10,
        duration_ms=500,
        timeout_s=60,
        workdir=tmp_path,
        name="carrier",
    )
    callee = Sipp(
        "uas_basic",
        local_ip=PBX_IP,
        local_port=sbc.ports.pbx,
        calls=20,
        timeout_s=60,
        workdir=tmp_path,
        name="pbx",
    )
    flood = os.urandom(120)
    started = time.monotonic()
    callee.start()
    try:
        caller.start(wait_bind=False)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((FLOODER_IP, 0))
            for n in range(FLOOD):
                with contextlib.suppress(BlockingIOError):
                    s.sendto(flood, sbc.ext)
                if n % 5000 == 4999:
                    time.sleep(0.01)
        flood_s = time.monotonic() - started
        res = caller.wait()
        callee.wait(10.0)
    finally:
        caller.stop()
        callee.stop()
    pbx_res = callee.result()
    assert res.ok, res.describe()
    assert (res.counter("Successful call") or 0) == 20, res.describe()
    assert len({m.call_id for m in pbx_res.requests("INVITE", "received")}) == 20
    kernel = dropped(sbc, "rate") - rate_before
    admitted_at_most = CEILING + CEILING * (flood_s + 1.0)
    assert kernel >= FLOOD - admitted_at_most, (kernel, flood_s)
    # The SBC read at most the admitted share of the flood (plus the calls' messages).
    assert received(sbc) - received_before < FLOOD / 4


def start_sbc(workdir: Path, security: str) -> SbcProcess:
    sbc = SbcProcess(workdir, admin_token=TOKEN, extra_files={"security.yaml": security})
    sbc.start()
    return sbc


def test_the_table_follows_reloads_and_goes_with_the_sbc(tmp_path: Path) -> None:
    """(c) A reload rebuilds the table (new ceiling, bans kept); SIGTERM removes it;
    an SBC killed outright (SIGKILL) leaves none behind either."""
    sbc = start_sbc(tmp_path / "a", "kernel_filter: {mode: on}\n")
    try:
        name = table(sbc)
        assert name in tables()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((SCANNER_IP, 0))
            s.sendto(scanner_options(sbc, s.getsockname()[1]), sbc.ext)
        assert eventually(lambda: SCANNER_IP in set_elements(sbc, "banned4_32"))
        event = sbc.rewrite_policy(
            "security.yaml",
            "kernel_filter: {mode: on, stranger_pps: 321, stranger_burst: 654}\n",
        )
        assert event.get("event") == "policy.reloaded", event
        ruleset = nft_text("table", "inet", name)
        assert "limit rate over 321/second burst 654 packets" in ruleset, ruleset
        assert SCANNER_IP in set_elements(sbc, "banned4_32")  # the ban survived the rebuild
    finally:
        assert sbc.stop() == 0
    assert name not in tables()

    killed = start_sbc(tmp_path / "b", "kernel_filter: {mode: on}\n")
    name = table(killed)
    assert name in tables()
    assert killed.proc is not None
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(timeout=10)
    assert eventually(lambda: name not in tables(), timeout=5.0)


def test_off_leaves_no_table(tmp_path: Path) -> None:
    """(d) ``kernel_filter: off`` never touches the kernel."""
    sbc = start_sbc(tmp_path / "off", "kernel_filter: {mode: off}\n")
    try:
        assert table(sbc) not in tables()
        assert metrics(sbc)["sbc_kernel_filter_up"] == 0
    finally:
        sbc.stop()


def without_net_admin(sbc: SbcProcess) -> subprocess.Popen[bytes]:
    """``sbc run`` as root but without CAP_NET_ADMIN, as an unprivileged service runs."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            "setpriv",
            "--bounding-set=-net_admin",
            "--inh-caps=-net_admin",
            "--",
            sys.executable,
            "-m",
            "sbc",
            "run",
            "--policies",
            str(sbc.policies),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=sbc.stdout_path.open("wb"),
        stderr=sbc.stderr_path.open("wb"),
        start_new_session=True,
    )


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) absent")
def test_without_the_capability_auto_runs_in_userspace_and_on_refuses(tmp_path: Path) -> None:
    """(e) The kernel says no: ``auto`` serves anyway and logs why, once; ``on``
    stops the start with exit status 3 and the reason."""
    auto = SbcProcess(tmp_path / "auto", extra_files={"security.yaml": ""})
    proc = without_net_admin(auto)
    try:
        assert eventually(lambda: options_ping(CARRIER_IP, auto.ext, timeout=0.3) == 200)
        event = auto.wait_log_event({"kernel_filter.unavailable"}, 0, timeout=5.0)
        assert event is not None, auto.stderr_tail()
        assert "CAP_NET_ADMIN" in str(event.get("reason")), event
        assert f"sbc_{proc.pid}" not in tables()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert [e.get("event") for e in auto.log_events()].count("kernel_filter.unavailable") == 1

    on = SbcProcess(tmp_path / "on", extra_files={"security.yaml": "kernel_filter: {mode: on}\n"})
    proc = without_net_admin(on)
    assert proc.wait(timeout=30) == 3
    failed = on.wait_log_event({"sbc.start_failed"}, 0, timeout=1.0)
    assert failed is not None, on.stderr_tail()
    assert "CAP_NET_ADMIN" in str(failed.get("error")), failed
