"""The kernel filter's modes, its syncing and reloads, against a fake libnftables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from sbc.guard.guard import Guard
from sbc.kernel.filter import KernelFilter, KernelFilterError, open_filter
from sbc.kernel.nftables import NftablesError, NftablesUnavailableError
from sbc.kernel.ruleset import FilterSpec, Listener
from sbc.kernel.runtime import KernelFilterRuntime
from sbc.policy import Policy, load_policy
from sbc.policy.security import KernelFilterPolicy, default_security

EPERM = "Error: Could not process rule: Operation not permitted\nadd table inet sbc_1\n"
SPEC = FilterSpec(listeners=(Listener("127.0.0.1", "udp", 5060),), stranger=None)


class FakeNft:
    """Records command buffers; fails with ``error`` while it is set."""

    def __init__(self, error: str | None = None) -> None:
        self.commands: list[str] = []
        self.error = error
        self.closed = False

    def run(self, commands: str) -> str:
        if self.error is not None:
            raise NftablesError(self.error)
        self.commands.append(commands)
        return ""

    def close(self) -> None:
        self.closed = True


def no_counters(table: str, names: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(names, 3)


def opener(nft: FakeNft) -> Callable[..., KernelFilter | None]:
    def open_(*args: object, **kwargs: object) -> KernelFilter | None:
        return open_filter(
            *args,  # type: ignore[arg-type]
            binding=lambda: nft,
            table="sbc_1",
            counters=no_counters,
            **kwargs,  # type: ignore[arg-type]
        )

    return open_


# --- modes --------------------------------------------------------------------------


def test_off_never_touches_the_kernel() -> None:
    def binding() -> FakeNft:
        raise AssertionError("libnftables loaded with kernel_filter: off")

    assert open_filter(KernelFilterPolicy(mode="off"), SPEC, {}, 0.0, binding=binding) is None


def test_auto_goes_on_in_userspace_when_the_kernel_says_no(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nft = FakeNft(error=EPERM)
    found = open_filter(KernelFilterPolicy(mode="auto"), SPEC, {}, 0.0, binding=lambda: nft)
    assert found is None
    assert nft.closed
    out = capsys.readouterr().out
    assert "kernel_filter.unavailable" in out
    assert "needs CAP_NET_ADMIN" in out


def test_auto_goes_on_when_libnftables_is_missing() -> None:
    def binding() -> FakeNft:
        raise NftablesUnavailableError("cannot load libnftables.so.1")

    assert open_filter(KernelFilterPolicy(mode="auto"), SPEC, {}, 0.0, binding=binding) is None


def test_on_refuses_to_start_without_it() -> None:
    nft = FakeNft(error=EPERM)
    with pytest.raises(KernelFilterError, match="needs CAP_NET_ADMIN"):
        open_filter(
            KernelFilterPolicy(mode="on"), SPEC, {}, 0.0, binding=lambda: nft, table="sbc_1"
        )

    def missing() -> FakeNft:
        raise NftablesUnavailableError("cannot load libnftables.so.1")

    with pytest.raises(KernelFilterError, match=r"libnftables\.so\.1"):
        open_filter(KernelFilterPolicy(mode="on"), SPEC, {}, 0.0, binding=missing)


def test_installed_with_the_bans_already_in_force() -> None:
    guard = Guard(default_security())
    guard.ban("192.0.2.7", now=0.0)
    nft = FakeNft()
    kernel = open_filter(
        KernelFilterPolicy(), SPEC, guard.ban_table, 10.0, binding=lambda: nft, table="sbc_1"
    )
    assert kernel is not None
    (buffer,) = nft.commands  # one transaction: the table and its bans
    assert buffer.startswith("add table inet sbc_1 { flags owner; }\ndelete table inet sbc_1\n")
    assert buffer.endswith("add element inet sbc_1 banned4_32 { 192.0.2.7 timeout 590000ms }\n")
    assert kernel.bans_held() == 1


# --- syncing ------------------------------------------------------------------------------


def test_a_failed_sync_is_retried_as_a_full_resync() -> None:
    guard = Guard(default_security())
    nft = FakeNft()
    kernel = KernelFilter(nft, "sbc_1", no_counters)
    kernel.apply(SPEC, guard.ban_table, 0.0)
    guard.ban("192.0.2.7", now=1.0)
    nft.error = "Error: something"
    kernel.sync(guard.ban_table, 1.0)
    assert kernel.failing
    assert kernel.errors == 1
    nft.error = None
    guard.ban("192.0.2.8", now=2.0)
    kernel.sync(guard.ban_table, 2.0)
    assert not kernel.failing
    assert nft.commands[-1].splitlines() == [
        "flush set inet sbc_1 banned4_32",
        "flush set inet sbc_1 banned6_64",
        "add element inet sbc_1 banned4_32 { 192.0.2.7 timeout 599000ms, 192.0.2.8 timeout"
        " 600000ms }",
    ]


def test_a_ban_of_a_new_prefix_length_rebuilds_the_table() -> None:
    guard = Guard(default_security())
    nft = FakeNft()
    kernel = KernelFilter(nft, "sbc_1", no_counters)
    kernel.apply(SPEC, guard.ban_table, 0.0)
    guard.ban("192.0.2.7", now=1.0)
    table = dict(guard.ban_table)
    table["10.0.0.0/24"] = replace(table["192.0.2.7"], source="10.0.0.0/24")
    kernel.sync(table, 1.0)
    assert "set banned4_24 { type ipv4_addr; flags timeout; }" in nft.commands[-1]
    assert "add element inet sbc_1 banned4_24 { 10.0.0.0 timeout" in nft.commands[-1]


def test_dropped_counts_and_close() -> None:
    nft = FakeNft()
    kernel = KernelFilter(nft, "sbc_1", no_counters)
    assert kernel.dropped() == {"banned": 0, "rate": 0, "trunk_rate": 0}  # not installed
    kernel.apply(SPEC, {}, 0.0)
    assert kernel.dropped() == {"banned": 3, "rate": 3, "trunk_rate": 3}
    kernel.apply(SPEC, {}, 1.0)  # a rebuilt table counts from 0: the total goes on
    assert kernel.dropped() == {"banned": 6, "rate": 6, "trunk_rate": 6}
    kernel.close()
    assert nft.commands[-1] == "delete table inet sbc_1\n"
    assert nft.closed
    assert not kernel.installed


# --- the runtime's holder -------------------------------------------------------------


def demo_policy(tmp_path: Path, security: str = "") -> Policy:
    root = Path(__file__).resolve().parents[2] / "policies"
    for name in ("interfaces.yaml", "trunks.yaml", "routes.yaml"):
        (tmp_path / name).write_text((root / name).read_text())
    (tmp_path / "security.yaml").write_text(security)
    return load_policy(tmp_path)


def test_follow_syncs_only_when_the_ban_table_changed(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path)
    guard = Guard(policy.security)
    nft = FakeNft()
    runtime = KernelFilterRuntime(opener(nft))
    runtime.start(policy, [Listener("127.0.0.1", "udp", 5060)], guard, 0.0)
    assert len(nft.commands) == 1
    runtime.follow(guard, 1.0)
    assert len(nft.commands) == 1  # nothing changed: no command at all
    guard.ban("192.0.2.7", now=1.5)
    runtime.follow(guard, 2.0)
    assert nft.commands[-1] == (
        "add element inet sbc_1 banned4_32 { 192.0.2.7 timeout 599500ms }\n"
    )
    guard.unban("192.0.2.7")
    runtime.follow(guard, 3.0)
    assert nft.commands[-1] == "delete element inet sbc_1 banned4_32 { 192.0.2.7 }\n"
    assert runtime.stats() == {
        "installed": 1,
        "bans": 0,
        "banned": 3,
        "rate": 3,
        "trunk_rate": 3,
    }


def test_bans_answered_403_stay_out_of_the_kernel(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path, "banned: {action: forbid}\n")
    guard = Guard(policy.security)
    nft = FakeNft()
    runtime = KernelFilterRuntime(opener(nft))
    runtime.start(policy, [], guard, 0.0)
    guard.ban("192.0.2.7", now=0.5)
    runtime.follow(guard, 1.0)
    assert len(nft.commands) == 1
    assert runtime.stats()["bans"] == 0


def test_reload_rebuilds_removes_and_reinstalls(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path)
    guard = Guard(policy.security)
    nft = FakeNft()
    runtime = KernelFilterRuntime(opener(nft))
    runtime.start(policy, [Listener("127.0.0.1", "udp", 5060)], guard, 0.0)
    guard.ban("192.0.2.7", now=0.0)
    faster = demo_policy(tmp_path, "kernel_filter: {stranger_pps: 900, stranger_burst: 900}\n")
    runtime.reload(faster, guard, 1.0)
    assert "limit rate over 900/second burst 900 packets" in nft.commands[-1]
    assert "127.0.0.1 . udp . 5060" in nft.commands[-1]  # the listeners of the start
    assert "banned4_32 { 192.0.2.7 timeout 599000ms }" in nft.commands[-1]
    runtime.reload(demo_policy(tmp_path, "kernel_filter: {mode: off}\n"), guard, 2.0)
    assert nft.commands[-1] == "delete table inet sbc_1\n"
    assert runtime.filter is None
    assert runtime.stats()["installed"] == 0
    runtime.reload(faster, guard, 3.0)
    assert runtime.filter is not None
    assert "banned4_32 { 192.0.2.7 timeout 597000ms }" in nft.commands[-1]


def test_a_reload_never_stops_the_sbc(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path, "kernel_filter: {mode: off}\n")
    guard = Guard(policy.security)
    nft = FakeNft(error=EPERM)
    runtime = KernelFilterRuntime(opener(nft))
    runtime.start(policy, [], guard, 0.0)
    runtime.reload(demo_policy(tmp_path, "kernel_filter: {mode: on}\n"), guard, 1.0)
    assert runtime.filter is None  # logged, and the SBC goes on
    nft.error = None
    runtime.reload(demo_policy(tmp_path, "kernel_filter: {mode: off}\n"), guard, 2.0)
    runtime.reload(demo_policy(tmp_path), guard, 3.0)
    assert runtime.filter is not None
    nft.error = "Error: boom"
    faster = demo_policy(tmp_path, "kernel_filter: {stranger_pps: 900, stranger_burst: 900}\n")
    runtime.reload(faster, guard, 4.0)
    assert runtime.filter is not None  # the old table stays
