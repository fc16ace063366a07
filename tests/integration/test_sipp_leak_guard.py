"""The leak guard against real peers: a manipulation rule that puts the PBX's
and the internal interface's addresses back into the INVITE toward the
carrier. With the shipped ``leak_guard: auto`` the carrier's SIPp receives
the header with the SBC's external address in their place (its message log
is the proof), the guard counts and logs the header by name only; after a
hot reload to ``block`` the carrier receives nothing and the PBX gets 503.

Topology (loopback): PBX SIPp on 127.0.0.20 -> SBC internal 127.0.0.2;
carrier SIPp on 127.0.0.10 <- SBC external 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import (
    PBX_IP,
    SBC_EXT_IP,
    SBC_INT_IP,
    SbcProcess,
    Sipp,
    leaks,
    run_calls,
    serving,
)

pytestmark = pytest.mark.integration

TOKEN = "leak-guard-admin-token-0123456789abcdef"


def leaky_rule(sbc: SbcProcess) -> str:
    """An outbound rule toward the carrier naming the PBX (address:port) and the
    SBC's internal face: the kind of edit that undoes topology hiding."""
    pbx_ip, pbx_port = sbc.trunk("pbx")
    return (
        "manipulations:\n"
        "  - trunk: carrier\n"
        "    direction: outbound\n"
        "    rules:\n"
        "      - name: leaky-origin\n"
        "        methods: [INVITE]\n"
        "        add:\n"
        "          header: X-Origin\n"
        f"          value: '<sip:gw@{pbx_ip}:{pbx_port}>;via={SBC_INT_IP}'\n"
    )


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    process = SbcProcess(tmp_path_factory.mktemp("sbc-leak-guard"), admin_token=TOKEN)
    process.extra_files["manipulations.yaml"] = leaky_rule(process)
    process.write_policies()
    yield from serving(process)


def pbx_calls_carrier(sbc: SbcProcess, tmp: Path, *, refused: bool = False) -> tuple[Sipp, Sipp]:
    carrier_ip, carrier_port = sbc.trunk("carrier")
    carrier = Sipp(
        "uas_basic",
        local_ip=carrier_ip,
        local_port=carrier_port,
        duration_ms=200,
        timeout_s=20,
        workdir=tmp,
        name="carrier",
    )
    pbx = Sipp(
        "uac_answered_or_refused" if refused else "uac_basic",
        local_ip=PBX_IP,
        remote=sbc.int_uri,
        service="2125550100",
        duration_ms=300,
        timeout_s=20,
        workdir=tmp,
        name="pbx",
    )
    return carrier, pbx


def leak_metric(sbc: SbcProcess, action: str) -> float:
    with httpx.Client(base_url=sbc.admin_url, timeout=5.0) as client:
        text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    name = f'sbc_topology_leaks_total{{action="{action}",header="X-Origin"}}'
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_auto_scrubs_what_a_rule_puts_back(sbc: SbcProcess, tmp_path: Path) -> None:
    since = sbc.log_offset()
    carrier, pbx = pbx_calls_carrier(sbc, tmp_path)
    (uas,), uac, _ = run_calls([carrier], pbx)
    assert uac.ok, uac.describe()
    assert uas.ok, uas.describe()

    invite = uas.requests("INVITE", "received")[0]
    assert invite.header("X-Origin") == f"<sip:gw@{SBC_EXT_IP}:{sbc.ports.ext}>;via={SBC_EXT_IP}"
    # Nothing the carrier received names the PBX or the SBC's internal face.
    assert leaks(uas.received, [PBX_IP, SBC_INT_IP]) == []

    event = sbc.wait_log_event({"topology.leak"}, since, header="X-Origin")
    assert event is not None
    assert event["action"] == "scrubbed"
    assert event["interface"] == "external"
    assert PBX_IP not in str(event)  # the header's name, never its value
    assert SBC_INT_IP not in str(event)
    assert leak_metric(sbc, "scrubbed") >= 1


def test_block_after_a_hot_reload_sends_nothing_and_refuses_the_call(
    sbc: SbcProcess, tmp_path: Path
) -> None:
    reload = sbc.rewrite_policy(
        "sbc.yaml", (sbc.policies / "sbc.yaml").read_text() + "topology: {leak_guard: block}\n"
    )
    assert reload["event"] == "policy.reloaded", reload
    try:
        carrier, pbx = pbx_calls_carrier(sbc, tmp_path, refused=True)
        _, uac, (idle,) = run_calls([], pbx, idle=[carrier], idle_grace=1.0)
        assert uac.ok, uac.describe()
        assert [s for s in uac.statuses("INVITE") if s >= 200] == [503]
        assert idle.requests("INVITE", "received") == []
        assert leak_metric(sbc, "blocked") >= 1
    finally:
        sbc.rewrite_policy(
            "sbc.yaml",
            (sbc.policies / "sbc.yaml").read_text().replace("topology: {leak_guard: block}\n", ""),
        )
