"""The ban diff: what the kernel's ban sets need to follow the guard's table."""

from __future__ import annotations

from sbc.guard.bans import Ban
from sbc.kernel.ruleset import MAX_TIMEOUT_S
from sbc.kernel.sync import MARGIN_S, BanDiff, KernelBans


def bans(*items: tuple[str, float]) -> dict[str, Ban]:
    return {key: Ban(key, "rate", 0.0, until) for key, until in items}


def applied(kernel: KernelBans, table: dict[str, Ban], now: float) -> BanDiff:
    diff = kernel.diff(table, now)
    kernel.applied(diff)
    return diff


def test_new_bans_are_added_with_their_time_left() -> None:
    kernel = KernelBans()
    diff = applied(kernel, bans(("192.0.2.7", 600.0), ("2001:db8::/64", 100.0)), now=10.0)
    assert set(diff.timeouts()) == {("192.0.2.7", 590.0), ("2001:db8::/64", 90.0)}
    assert diff.delete == ()
    assert len(kernel) == 2
    assert "192.0.2.7" in kernel


def test_nothing_changed_nothing_to_do() -> None:
    kernel = KernelBans()
    table = bans(("192.0.2.7", 600.0))
    applied(kernel, table, now=0.0)
    assert not kernel.diff(table, now=5.0)


def test_a_ban_lifted_early_is_deleted() -> None:
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 600.0), ("192.0.2.8", 600.0)), now=0.0)
    diff = applied(kernel, bans(("192.0.2.8", 600.0)), now=5.0)
    assert diff.delete == ("192.0.2.7",)
    assert diff.add == ()
    assert "192.0.2.7" not in kernel


def test_an_expired_ban_needs_no_command() -> None:
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 60.0)), now=0.0)
    # The guard forgot it (or still lists it, expired): the kernel's element timed out.
    assert not kernel.diff({}, now=60.5)
    diff = kernel.diff(bans(("192.0.2.7", 60.0)), now=61.0)
    assert (diff.add, diff.delete, diff.lapsed) == ((), (), ("192.0.2.7",))
    kernel.applied(diff)
    assert len(kernel) == 0  # forgotten once surely lapsed


def test_a_lift_right_at_the_end_is_left_to_the_timeout() -> None:
    """Deleting an element that just timed out would fail the whole transaction."""
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 60.0)), now=0.0)
    assert not kernel.diff({}, now=60.0 - MARGIN_S / 2)


def test_a_source_banned_again_is_replaced() -> None:
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 600.0)), now=0.0)
    diff = applied(kernel, bans(("192.0.2.7", 900.0)), now=300.0)
    assert diff.delete == ("192.0.2.7",)
    assert list(diff.timeouts()) == [("192.0.2.7", 600.0)]


def test_a_ban_banned_again_as_its_element_lapses_waits_a_round() -> None:
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 60.0)), now=0.0)
    assert not kernel.diff(bans(("192.0.2.7", 660.0)), now=60.0)  # lapsing right now
    diff = kernel.diff(bans(("192.0.2.7", 660.0)), now=60.0 + 2 * MARGIN_S)
    assert diff.delete == ()  # gone from the kernel by now
    assert [key for key, _ in diff.add] == ["192.0.2.7"]


def test_a_ban_longer_than_an_element_may_last_is_put_back() -> None:
    kernel = KernelBans()
    year = 365 * 86_400.0
    applied(kernel, bans(("192.0.2.7", year)), now=0.0)
    assert not kernel.diff(bans(("192.0.2.7", year)), now=MAX_TIMEOUT_S - 10)
    diff = kernel.diff(bans(("192.0.2.7", year)), now=MAX_TIMEOUT_S + 2 * MARGIN_S)
    assert list(diff.timeouts()) == [("192.0.2.7", year - MAX_TIMEOUT_S - 2 * MARGIN_S)]
    assert diff.delete == ()


def test_only_the_changed_keys_are_looked_at() -> None:
    kernel = KernelBans()
    table = bans(("192.0.2.7", 600.0), ("192.0.2.8", 600.0))
    applied(kernel, table, now=0.0)
    del table["192.0.2.7"]  # lifted, but not among the keys said to have changed
    table.update(bans(("192.0.2.9", 600.0)))
    diff = kernel.diff(table, 1.0, keys={"192.0.2.9"})
    assert (diff.add, diff.delete) == ((("192.0.2.9", 600.0),), ())
    kernel.applied(diff)
    full = kernel.diff(table, 2.0)  # the minute's full comparison catches everything
    assert (full.add, full.delete) == ((), ("192.0.2.7",))


def test_resync_flushes_and_puts_every_ban_in() -> None:
    kernel = KernelBans()
    applied(kernel, bans(("192.0.2.7", 600.0), ("192.0.2.8", 600.0)), now=0.0)
    diff = kernel.resync(bans(("192.0.2.9", 600.0), ("192.0.2.10", 5.0)), now=10.0)
    assert diff.flush
    assert [key for key, _ in diff.add] == ["192.0.2.9"]  # 192.0.2.10 has ended
    kernel.applied(diff)
    assert len(kernel) == 1
    assert "192.0.2.7" not in kernel
