"""Bans: scanner User-Agents, strikes, failed authentications; expiry, unban, exemptions."""

from __future__ import annotations

import pytest
from guard_samples import CARRIER_IP, STRANGER, guard, limit, only_invites
from structlog.testing import capture_logs

from sbc.guard.bans import Ban
from sbc.guard.guard import Guard


def invite(g: Guard, now: float, source: str = STRANGER, trunk: str | None = None) -> str:
    """Send one INVITE; return the verdict's action (or the status when it responds)."""
    verdict = g.check("INVITE", source, "external", trunk, "Phone/1.0", now)
    return str(verdict.status) if verdict.action == "respond" else verdict.action


# --- scanners -------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent",
    [
        "friendly-scanner",
        "Friendly-Scanner",
        "sipvicious 0.3.4",
        "SIPCLI/v1.8",
        "VaxSIPUserAgent/3.1",
    ],
)
def test_a_scanner_user_agent_bans_at_once(agent: str) -> None:
    g = guard({"bans": {"duration_s": 300}})
    verdict = g.check("OPTIONS", STRANGER, "external", None, agent, 100.0)
    assert verdict.action == "drop"
    assert g.bans(100.0) == [Ban(STRANGER, "scanner", 100.0, 400.0)]
    assert g.stats["scanners"] == 1
    assert g.stats["banned"] == 1
    # Banned: even an innocent-looking request is dropped until the ban ends.
    assert invite(g, 399.0) == "drop"
    assert g.stats["dropped_banned"] == 1
    assert invite(g, 400.0) == "allow"
    assert g.bans(400.0) == []


@pytest.mark.parametrize("agent", ["sipsak 0.9.8", "SIPp", "Linphone/5.2", "baresip v3.0.0", ""])
def test_ordinary_user_agents_pass(agent: str) -> None:
    g = guard()
    assert g.check("OPTIONS", STRANGER, "external", None, agent, 0.0).allowed
    assert g.bans(0.0) == []


def test_no_user_agent_is_no_scanner() -> None:
    assert guard().check("OPTIONS", STRANGER, "external", None, None, 0.0).allowed


def test_the_scanner_list_is_configurable() -> None:
    g = guard({"bans": {"scanner_user_agents": ["EvilDialer"]}})
    assert g.check("OPTIONS", STRANGER, "external", None, "friendly-scanner", 0.0).allowed
    assert not g.check("OPTIONS", "192.0.2.1", "external", None, "x-evildialer-2", 0.0).allowed


def test_a_trunk_with_a_scanner_user_agent_is_not_banned() -> None:
    g = guard()
    verdict = g.check("OPTIONS", CARRIER_IP, "external", "carrier", "friendly-scanner", 0.0)
    assert verdict.allowed
    assert g.bans(0.0) == []


def test_an_exempt_scanner_is_not_banned() -> None:
    g = guard({"bans": {"exempt": ["203.0.113.0/24"]}})
    assert g.check("OPTIONS", STRANGER, "external", None, "friendly-scanner", 0.0).allowed
    assert g.bans(0.0) == []
    assert g.stats["scanners"] == 0


def test_banned_sources_can_get_403_instead_of_silence() -> None:
    g = guard({"banned": {"action": "forbid"}})
    verdict = g.check("OPTIONS", STRANGER, "external", None, "friendly-scanner", 0.0)
    assert (verdict.action, verdict.status, verdict.reason) == ("respond", 403, "Forbidden")
    assert invite(g, 1.0) == "403"


# --- strikes ----------------------------------------------------------------------

STRIKES = only_invites(1, 1, strikes=3, window_s=10, duration_s=60)


def test_strikes_within_the_window_ban_then_the_ban_expires() -> None:
    g = guard(STRIKES)
    assert invite(g, 0.0) == "allow"
    assert [invite(g, 0.1), invite(g, 0.2)] == ["503", "503"]  # strikes 1 and 2
    assert invite(g, 0.3) == "drop"  # strike 3: banned on the spot
    assert g.bans(0.3) == [Ban(STRANGER, "rate", 0.3, 60.3)]
    assert invite(g, 60.0) == "drop"
    assert g.stats == {
        "allowed": 1,
        "limited": 3,
        "banned": 1,
        "dropped_banned": 1,
        "acl_denied": 0,
        "scanners": 0,
        "malformed": 0,
        "scanners_spared": 0,
    }
    assert invite(g, 60.3) == "allow"  # expired; its bucket starts afresh


def test_strikes_spread_over_windows_do_not_ban() -> None:
    g = guard(STRIKES)
    now = 0.0
    for _ in range(10):
        assert invite(g, now) == "allow"
        assert invite(g, now) == "503"  # one strike per 11 s: never 3 in 10 s
        now += 11.0
    assert g.bans(now) == []


def test_unban_lifts_the_ban_and_forgets_the_strikes() -> None:
    g = guard(STRIKES)
    for now in (0.0, 0.1, 0.2, 0.3):
        invite(g, now)
    assert g.unban(STRANGER)
    assert not g.unban(STRANGER)
    assert invite(g, 1.0) == "allow"
    assert invite(g, 1.1) == "503"  # one strike, not the fourth
    assert g.bans(1.1) == []


def test_exempt_sources_are_limited_but_never_banned() -> None:
    g = guard({**STRIKES, "bans": {**STRIKES["bans"], "exempt": ["203.0.113.0/28"]}})
    answers = [invite(g, i * 0.01) for i in range(50)]
    assert answers == ["allow"] + ["503"] * 49
    assert g.bans(1.0) == []


def test_trunk_sources_are_limited_but_never_banned() -> None:
    policy = {
        "rate_limits": {"per_trunk": {"carrier": {"INVITE": limit(1, 1)}}},
        "bans": {"strikes": 2, "window_s": 10},
    }
    g = guard(policy)
    answers = [invite(g, i * 0.01, CARRIER_IP, "carrier") for i in range(20)]
    assert answers == ["allow"] + ["503"] * 19
    assert g.bans(1.0) == []


def test_trunk_sources_limited_per_source_are_never_banned() -> None:
    policy = {**STRIKES, "rate_limits": {**STRIKES["rate_limits"], "per_source_applies_to": "all"}}
    g = guard(policy)
    answers = [invite(g, i * 0.01, CARRIER_IP, "carrier") for i in range(20)]
    assert answers == ["allow"] + ["503"] * 19
    assert g.bans(1.0) == []


def test_strikes_null_never_bans() -> None:
    g = guard(only_invites(1, 1, strikes=None))
    answers = [invite(g, i * 0.001) for i in range(500)]
    assert answers == ["allow"] + ["503"] * 499
    assert g.bans(1.0) == []


# --- failed authentication and manual bans ---------------------------------------


def test_auth_failures_within_the_window_ban() -> None:
    g = guard({"bans": {"auth_failures": 3, "window_s": 30, "duration_s": 100}})
    assert g.record_auth_failure(STRANGER, 0.0) is None
    assert g.record_auth_failure(STRANGER, 40.0) is None  # the first one aged out
    assert g.record_auth_failure(STRANGER, 41.0) is None
    assert g.record_auth_failure(STRANGER, 42.0) == Ban(STRANGER, "auth", 42.0, 142.0)
    assert invite(g, 43.0) == "drop"
    assert g.record_auth_failure(STRANGER, 44.0) is None  # already banned


def test_auth_failures_spare_exempt_sources_and_can_be_off() -> None:
    exempt = guard({"bans": {"auth_failures": 1, "exempt": ["203.0.113.7/32"]}})
    assert exempt.record_auth_failure(STRANGER, 0.0) is None
    off = guard({"bans": {"auth_failures": None}})
    assert all(off.record_auth_failure(STRANGER, float(i)) is None for i in range(100))
    assert off.bans(100.0) == []


def test_manual_ban_ignores_exemptions_and_may_set_its_duration() -> None:
    g = guard({"bans": {"exempt": ["0.0.0.0/0"]}})
    assert g.ban(STRANGER, 10.0, duration_s=5.0) == Ban(STRANGER, "manual", 10.0, 15.0)
    assert invite(g, 14.9) == "drop"
    assert invite(g, 15.0) == "allow"


def test_bans_list_only_those_in_force_oldest_first() -> None:
    g = guard({"bans": {"duration_s": 100}})
    g.ban("192.0.2.1", 0.0)
    g.ban("192.0.2.2", 50.0)
    g.ban("192.0.2.3", 60.0, duration_s=10.0)
    assert [b.source for b in g.bans(65.0)] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert [b.source for b in g.bans(100.0)] == ["192.0.2.2"]


def test_the_ban_version_moves_on_every_change_and_only_then() -> None:
    """The kernel filter copies the ban table only when its version moved."""
    g = guard({"bans": {"duration_s": 100, "max_bans": 2}})
    seen = [g.ban_version]

    def moved() -> bool:
        seen.append(g.ban_version)
        return seen[-1] != seen[-2]

    assert invite(g, 0.0) == "allow"
    assert not moved()  # traffic alone changes nothing
    g.ban("192.0.2.1", 0.0)
    assert moved()
    assert g.ban_table["192.0.2.1"].until == 100.0
    g.check("OPTIONS", "192.0.2.2", "external", None, "friendly-scanner", 1.0)
    g.check("OPTIONS", "192.0.2.3", "external", None, "friendly-scanner", 2.0)  # pushes .2 out
    assert moved()
    assert set(g.ban_table) == {"192.0.2.1", "192.0.2.3"}
    assert g.unban("192.0.2.1")
    assert moved()
    assert not g.unban("192.0.2.1")
    assert not moved()
    assert invite(g, 200.0, source="192.0.2.3") == "allow"  # expired when looked up
    assert moved()
    assert dict(g.ban_table) == {}


def test_ban_changes_name_the_sources_that_changed() -> None:
    g = guard({"bans": {"duration_s": 100, "max_bans": 2}})
    g.ban("192.0.2.1", 0.0)
    assert g.ban_changes() is None  # the journal starts at the first question
    assert g.ban_changes() == set()
    g.check("OPTIONS", "192.0.2.2", "external", None, "friendly-scanner", 1.0)
    g.check("OPTIONS", "192.0.2.3", "external", None, "friendly-scanner", 2.0)  # pushes .2 out
    g.unban("192.0.2.1")
    assert g.ban_changes() == {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
    assert g.ban_changes() == set()


def test_ban_changes_are_bounded_when_nobody_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sbc.guard.bans.JOURNAL_LIMIT", 3)
    g = guard({"bans": {"duration_s": 100}})
    assert g.ban_changes() is None
    for i in range(5):
        g.ban(f"192.0.2.{i}", 0.0)
    assert g.ban_changes() is None  # too many to list: compare everything
    g.ban("192.0.2.9", 0.0)
    assert g.ban_changes() == {"192.0.2.9"}


def test_a_full_ban_table_makes_room_with_its_newest_automatic_ban() -> None:
    g = guard({"bans": {"max_bans": 5}})
    for i in range(12):
        g.check("OPTIONS", f"192.0.2.{i}", "external", None, "friendly-scanner", float(i))
    # The four first bans stand until they expire; the fifth slot takes the latest.
    assert [b.source for b in g.bans(20.0)] == [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.11",
    ]
    assert g.stats["banned"] == 12


def test_manual_and_standing_bans_survive_a_spoofed_scanner_flood() -> None:
    """A flood of scanner User-Agents from a new spoofed source each must not
    push out the operator's bans or the bans already in force."""
    g = guard({"bans": {"max_bans": 100, "duration_s": 600}})
    g.ban("198.51.100.1", 0.0, duration_s=3600)  # the operator's
    g.check("OPTIONS", "198.51.100.2", "external", None, "friendly-scanner", 1.0)
    g.check("INVITE", "198.51.100.3", "external", None, "sipcli", 2.0)
    for i in range(20_000):
        source = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        g.check("OPTIONS", source, "external", None, "sipvicious", 100.0 + i * 0.001)
    sources = {b.source for b in g.bans(200.0)}
    assert {"198.51.100.1", "198.51.100.2", "198.51.100.3"} <= sources
    assert len(sources) == 100


def test_a_manual_ban_makes_room_even_in_a_full_table() -> None:
    g = guard({"bans": {"max_bans": 3}})
    for i in range(3):
        g.check("OPTIONS", f"192.0.2.{i}", "external", None, "friendly-scanner", float(i))
    g.ban("198.51.100.1", 5.0)
    assert [b.source for b in g.bans(5.0)] == ["192.0.2.0", "192.0.2.1", "198.51.100.1"]
    # Manual bans only: the oldest manual one goes; automatic bans find no room.
    m = guard({"bans": {"max_bans": 2}})
    for i in range(3):
        m.ban(f"198.51.100.{i}", float(i))
    assert [b.source for b in m.bans(5.0)] == ["198.51.100.1", "198.51.100.2"]
    assert m.check("OPTIONS", STRANGER, "external", None, "friendly-scanner", 6.0).allowed
    assert [b.source for b in m.bans(6.0)] == ["198.51.100.1", "198.51.100.2"]


def test_expired_bans_make_room_before_any_standing_one_goes() -> None:
    g = guard({"bans": {"max_bans": 3, "duration_s": 10}})
    for i in range(3):
        g.check("OPTIONS", f"192.0.2.{i}", "external", None, "friendly-scanner", float(i))
    g.check("OPTIONS", "192.0.2.9", "external", None, "friendly-scanner", 10.5)  # .0 expired
    assert [b.source for b in g.bans(10.5)] == ["192.0.2.1", "192.0.2.2", "192.0.2.9"]


def test_a_scanner_flood_from_spoofed_sources_stays_bounded() -> None:
    g = guard({"bans": {"max_bans": 1000}})
    for i in range(20_000):
        source = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        assert g.check("OPTIONS", source, "external", None, "sipvicious", 1.0).action == "drop"
    assert len(g.bans(1.0)) == 1000


def test_check_source_screens_bans_and_acls_before_parsing() -> None:
    g = guard({"acl": {"internal": {"allow": ["10.0.0.0/8"]}}})
    assert g.check_source(STRANGER, "external", 0.0).allowed
    assert g.check_source(STRANGER, "internal", 0.0).action == "drop"
    g.ban(STRANGER, 0.0)
    assert g.check_source(STRANGER, "external", 1.0).action == "drop"
    assert (g.stats["acl_denied"], g.stats["dropped_banned"], g.stats["allowed"]) == (1, 1, 0)


# --- standing: one forged User-Agent must not ban a source in use -----------------


def test_a_scanner_agent_from_a_source_in_a_call_is_counted_not_banned() -> None:
    g = guard()
    g.call_established("call-1", ["192.0.2.21", "198.51.100.10"])
    with capture_logs() as logs:
        for i in range(100):  # 5/s: under its OPTIONS limit
            verdict = g.check("OPTIONS", "192.0.2.21", "external", None, "friendly-scanner", i / 5)
            assert verdict.allowed
    assert g.bans(0.0) == []
    assert g.stats["scanners_spared"] == 100
    assert g.stats["scanners"] == 0
    assert len([e for e in logs if e["event"] == "guard.scanner_spared"]) == 1  # throttled
    g.call_ended("call-1")
    assert g.check("OPTIONS", "192.0.2.21", "external", None, "sipvicious", 30.0).action == "drop"


def test_standing_is_counted_per_call() -> None:
    g = guard()
    g.call_established("a", ["192.0.2.21"])
    g.call_established("b", ["192.0.2.21"])
    g.call_established("b", ["192.0.2.21"])  # told twice: counted once
    g.call_ended("a")
    g.call_ended("a")
    assert g.check("OPTIONS", "192.0.2.21", "external", None, "sipvicious", 0.0).allowed
    g.call_ended("b")
    assert g.check("OPTIONS", "192.0.2.21", "external", None, "sipvicious", 0.0).action == "drop"


def test_standing_covers_the_source_block() -> None:
    """Keyed per /64, a forged scanner from a neighbour address would ban the
    caller's block: standing is kept per key too."""
    g = guard()
    g.call_established("a", ["2001:db8:1:2::10"])
    assert g.check("OPTIONS", "2001:db8:1:2::99", "external", None, "sipvicious", 0.0).allowed
    assert g.bans(0.0) == []


def test_a_relay_binding_spares_a_source_through_the_hook() -> None:
    g = guard()
    g.spares = lambda host: host == "192.0.2.30"
    assert g.check("REGISTER", "192.0.2.30", "external", None, "friendly-scanner", 0.0).allowed
    assert g.check("REGISTER", "192.0.2.31", "external", None, "friendly-scanner", 0.0).action == (
        "drop"
    )


def test_a_spared_source_is_still_rate_limited_and_banned_for_its_rate() -> None:
    g = guard(STRIKES)
    g.call_established("a", [STRANGER])
    assert invite(g, 0.0) == "allow"
    assert [invite(g, 0.1), invite(g, 0.2), invite(g, 0.3)] == ["503", "503", "drop"]
