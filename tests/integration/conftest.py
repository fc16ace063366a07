"""Fixtures for the real-peer (SIPp) integration tests.

- ``sbc`` / ``sbc_tcp``: one SBC process per module on free ports (UDP / TCP trunks).
- ``sipp_pair``: a factory that runs a callee (UAS) and a caller (UAC) SIPp
  scenario through the SBC, in either direction, and returns both results.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    CARRIER_IP,
    PBX_IP,
    SIPP,
    SbcProcess,
    Sipp,
    SippResult,
    run_pair,
    serving,
)

SippPair = Callable[..., tuple[SippResult, SippResult]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: an integration test that waits out a protocol timer or a call (>5 s)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason="sipp binary not found (Debian package sip-tester)")
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.integration)
            if SIPP is None:
                item.add_marker(skip)


def _start_sbc(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: Any
) -> Iterator[SbcProcess]:
    yield from serving(SbcProcess(tmp_path_factory.mktemp(name), **kwargs))


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """The SBC on free ports, trunks over UDP, one per test module."""
    yield from _start_sbc(tmp_path_factory, "sbc-udp", transport="udp")


@pytest.fixture(scope="module")
def sbc_tcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    """The SBC on free ports, trunks over TCP."""
    yield from _start_sbc(tmp_path_factory, "sbc-tcp", transport="tcp")


@pytest.fixture
def sipp_pair(tmp_path: Path) -> SippPair:
    """Run ``uas`` then ``uac`` scenarios through an SBC.

    ``direction="inbound"``: caller = carrier (127.0.0.10) → SBC external,
    callee = PBX (127.0.0.20). ``"outbound"``: caller = PBX → SBC internal,
    callee = carrier. ``uas_kw`` / ``uac_kw`` go to :class:`Sipp`.
    """

    def run(
        sbc: SbcProcess,
        uas: str,
        uac: str,
        *,
        direction: str = "inbound",
        calls: int = 1,
        rate: float | None = None,
        timeout_s: float = 30.0,
        uas_kw: dict[str, Any] | None = None,
        uac_kw: dict[str, Any] | None = None,
    ) -> tuple[SippResult, SippResult]:
        if direction == "inbound":
            callee_ip, callee_port = PBX_IP, sbc.ports.pbx
            caller_ip, target = CARRIER_IP, sbc.ext_uri
        else:
            callee_ip, callee_port = CARRIER_IP, sbc.ports.carrier
            caller_ip, target = PBX_IP, sbc.int_uri
        common: dict[str, Any] = {
            "transport": sbc.transport,
            "calls": calls,
            "timeout_s": timeout_s,
            "workdir": tmp_path,
        }
        uas_args: dict[str, Any] = {"duration_ms": 200, **common, **(uas_kw or {})}
        uac_args: dict[str, Any] = {"duration_ms": 300, **common, **(uac_kw or {})}
        if rate is not None:
            uac_args["rate"] = rate
        callee = Sipp(uas, local_ip=callee_ip, local_port=callee_port, **uas_args)
        caller = Sipp(uac, local_ip=caller_ip, remote=target, **uac_args)
        return run_pair(callee, caller)

    return run
