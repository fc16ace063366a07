"""Rate limits per source and per trunk, the LRU bound, and hot reload."""

from __future__ import annotations

from typing import Any

import pytest
from guard_samples import CARRIER_IP, STRANGER, guard, limit, only_invites, security

from sbc.guard.guard import Guard, request_class


def send(
    g: Guard, method: str, now: float, source: str = STRANGER, trunk: str | None = None
) -> str:
    verdict = g.check(method, source, "external", trunk, None, now)
    return str(verdict.status) if verdict.action == "respond" else verdict.action


def burst(g: Guard, method: str, count: int, now: float = 0.0, **kw: Any) -> list[str]:
    return [send(g, method, now, **kw) for _ in range(count)]


def test_over_the_limit_gets_503_with_retry_after() -> None:
    g = guard(only_invites(10, 3))
    assert burst(g, "INVITE", 3) == ["allow"] * 3
    verdict = g.check("INVITE", STRANGER, "external", None, None, 0.0)
    assert (verdict.action, verdict.status, verdict.reason) == (
        "respond",
        503,
        "Rate Limit Exceeded",
    )
    assert dict(verdict.headers) == {"Retry-After": "5"}
    assert send(g, "INVITE", 0.1) == "allow"  # a tenth of a second refills one
    assert g.stats["allowed"] == 4
    assert g.stats["limited"] == 1


@pytest.mark.parametrize(
    ("limited", "expected"),
    [
        ({"action": "drop"}, ("drop", 0, {})),
        ({"action": "forbid"}, ("respond", 403, {})),
        (
            {"action": "reject", "status": 480, "retry_after_s": 30},
            ("respond", 480, {"Retry-After": "30"}),
        ),
        ({"action": "reject", "retry_after_s": None}, ("respond", 503, {})),
    ],
)
def test_what_limited_requests_get(limited: dict[str, Any], expected: tuple[Any, ...]) -> None:
    g = guard({**only_invites(1, 1), "limited": limited})
    send(g, "INVITE", 0.0)
    verdict = g.check("INVITE", STRANGER, "external", None, None, 0.0)
    assert (verdict.action, verdict.status, dict(verdict.headers)) == expected


def test_method_classes_have_separate_buckets() -> None:
    per_source = {k: limit(1, 2) for k in ("INVITE", "REGISTER", "OPTIONS", "other")}
    g = guard({"rate_limits": {"per_source": per_source}})
    assert burst(g, "INVITE", 3) == ["allow", "allow", "503"]
    assert burst(g, "REGISTER", 3) == ["allow", "allow", "503"]
    assert burst(g, "OPTIONS", 3) == ["allow", "allow", "503"]
    # Everything else shares "other"; method names are case-sensitive (RFC 3261 §7.1).
    assert [send(g, m, 0.0) for m in ("BYE", "invite", "SUBSCRIBE")] == ["allow", "allow", "503"]


def test_null_switches_a_limit_off() -> None:
    g = guard(only_invites(1, 1))
    assert set(burst(g, "OPTIONS", 1000)) == {"allow"}
    assert g.tracked_sources() == 0  # nothing to remember for unlimited traffic


def test_sources_have_separate_buckets() -> None:
    g = guard(only_invites(1, 1))
    assert send(g, "INVITE", 0.0, source="192.0.2.1") == "allow"
    assert send(g, "INVITE", 0.0, source="192.0.2.1") == "503"
    assert send(g, "INVITE", 0.0, source="192.0.2.2") == "allow"


def test_defaults_leave_a_steady_20_calls_per_second_alone() -> None:
    g = guard()
    now, answers = 0.0, set()
    for _ in range(20 * 60):  # one minute: INVITE, ACK, BYE per call, 20 calls/s
        answers |= {send(g, m, now) for m in ("INVITE", "ACK", "BYE")}
        now += 0.05
    assert answers == {"allow"}


def test_defaults_stop_a_flood() -> None:
    g = guard()
    answers = burst(g, "INVITE", 100)
    assert answers.count("allow") == 40  # the default INVITE burst


# --- trunks ------------------------------------------------------------------------

TRUNK_LIMITS = {
    "rate_limits": {
        "per_source": {"INVITE": limit(1, 1)},
        "per_trunk": {"carrier": {"INVITE": limit(100, 5)}},
    }
}


def test_trunk_traffic_skips_per_source_limits_by_default() -> None:
    g = guard(TRUNK_LIMITS)
    assert burst(g, "INVITE", 6, source=CARRIER_IP, trunk="carrier") == ["allow"] * 5 + ["503"]
    assert set(burst(g, "INVITE", 1000, source="192.0.2.20", trunk="pbx")) == {"allow"}


def test_per_source_limits_can_apply_to_trunks_too() -> None:
    policy = security(TRUNK_LIMITS)
    g = guard({"rate_limits": {**TRUNK_LIMITS["rate_limits"], "per_source_applies_to": "all"}})
    assert policy.limit_trunk_sources is False
    assert g.policy.limit_trunk_sources is True
    assert burst(g, "INVITE", 2, source=CARRIER_IP, trunk="carrier") == ["allow", "503"]


def test_a_trunk_bucket_is_shared_by_all_its_sources() -> None:
    g = guard(TRUNK_LIMITS)
    answers = [send(g, "INVITE", 0.0, source=f"198.51.100.{i}", trunk="carrier") for i in range(7)]
    assert answers == ["allow"] * 5 + ["503", "503"]


def test_trunk_limits_apply_per_method_class() -> None:
    g = guard(TRUNK_LIMITS)
    burst(g, "INVITE", 5, source=CARRIER_IP, trunk="carrier")
    assert set(burst(g, "BYE", 100, source=CARRIER_IP, trunk="carrier")) == {"allow"}


# --- bounded memory ----------------------------------------------------------------


def spoofed(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def test_200k_spoofed_sources_keep_the_table_at_its_bound() -> None:
    g = guard()  # max_sources defaults to 100 000
    for i in range(200_000):
        g.check("INVITE", spoofed(i), "external", None, None, 0.0)
    assert g.tracked_sources() == 100_000
    assert g.stats["allowed"] == 200_000  # one INVITE each: nobody was limited


def test_the_least_recently_seen_source_is_evicted_first() -> None:
    g = guard(
        {
            **only_invites(1, 1),
            "rate_limits": {**only_invites(1, 1)["rate_limits"], "max_sources": 3},
        }
    )
    assert send(g, "INVITE", 0.0) == "allow"  # STRANGER's bucket is now empty
    for i in range(2):
        send(g, "INVITE", 0.0, source=spoofed(i))
    assert send(g, "INVITE", 0.0) == "503"  # STRANGER is now the most recently seen
    send(g, "INVITE", 0.0, source=spoofed(2))  # evicts spoofed(0), not STRANGER
    assert g.tracked_sources() == 3
    assert send(g, "INVITE", 0.0) == "503"
    assert send(g, "INVITE", 0.0, source=spoofed(0)) == "allow"  # forgotten: a fresh bucket


# --- hot reload --------------------------------------------------------------------


def test_reload_keeps_buckets_whose_limit_is_unchanged() -> None:
    g = guard(only_invites(1, 2))
    burst(g, "INVITE", 2)
    g.set_policy(security({**only_invites(1, 2), "acl": {"internal": {"allow": ["10.0.0.0/8"]}}}))
    assert send(g, "INVITE", 0.0) == "503"


def test_reload_restarts_buckets_whose_limit_changed() -> None:
    g = guard(only_invites(1, 2))
    burst(g, "INVITE", 2)
    g.set_policy(security(only_invites(1, 3)))
    assert burst(g, "INVITE", 4) == ["allow"] * 3 + ["503"]


def test_reload_keeps_trunk_buckets_and_bans() -> None:
    g = guard(TRUNK_LIMITS)
    burst(g, "INVITE", 5, source=CARRIER_IP, trunk="carrier")
    g.ban("192.0.2.66", 0.0)
    g.set_policy(security(TRUNK_LIMITS))
    assert send(g, "INVITE", 0.0, source=CARRIER_IP, trunk="carrier") == "503"
    assert [b.source for b in g.bans(1.0)] == ["192.0.2.66"]
    g.set_policy(security())  # carrier no longer limited, ban stays
    assert set(burst(g, "INVITE", 50, source=CARRIER_IP, trunk="carrier")) == {"allow"}
    assert send(g, "INVITE", 1.0, source="192.0.2.66") == "drop"


def test_reload_keeps_strikes() -> None:
    g = guard(only_invites(1, 1, strikes=3, window_s=10))
    burst(g, "INVITE", 3)  # one allowed, two strikes
    g.set_policy(security(only_invites(1, 1, strikes=3, window_s=10)))
    assert send(g, "INVITE", 0.0) == "drop"  # the third strike bans


def test_reload_shrinking_max_sources_trims_the_table() -> None:
    g = guard()
    for i in range(50):
        send(g, "INVITE", 0.0, source=spoofed(i))
    g.set_policy(security({"rate_limits": {"max_sources": 10}}))
    assert g.tracked_sources() == 10


# --- before parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        (b"INVITE sip:x SIP/2.0\r\n", 0),
        (b"REGISTER sip:x SIP/2.0\r\n", 1),
        (b"OPTIONS sip:x SIP/2.0\r\n", 2),
        (b"BYE sip:x SIP/2.0\r\n", 3),
        (b"invite sip:x SIP/2.0\r\n", 3),  # case-sensitive (RFC 3261 §7.1): an extension
        (b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\n", 2),  # leading CRLFs (RFC 3261 §7.5)
        (b"SIP/2.0 200 OK\r\n", None),  # a response
        (b"\x16\x03\x01\x02\x00", None),
        (b"", None),
        (b"INVITE", None),
        (b"X" * 40 + b" sip:x SIP/2.0", None),  # no method is that long
    ],
)
def test_request_class_reads_the_first_token(data: bytes, cls: int | None) -> None:
    assert request_class(data) == cls


def test_limit_source_charges_the_bucket_and_strikes() -> None:
    g = guard(only_invites(1, 2, strikes=2, window_s=10))
    verdicts = [g.limit_source(0, STRANGER, 0.0).action for _ in range(4)]
    assert verdicts == ["allow", "allow", "respond", "drop"]  # 2 strikes: banned
    assert [b.reason for b in g.bans(0.0)] == ["rate"]


def test_limit_source_leaves_unlimited_classes_without_state() -> None:
    g = guard(only_invites(1, 1))
    assert all(g.limit_source(3, f"192.0.2.{i}", 0.0).allowed for i in range(200))
    assert g.tracked_sources() == 0


def test_malformed_messages_are_strikes() -> None:
    g = guard({"bans": {"strikes": 3, "window_s": 10, "duration_s": 60}})
    assert g.record_malformed(STRANGER, 0.0) is None
    assert g.record_malformed(STRANGER, 1.0) is None
    ban = g.record_malformed(STRANGER, 2.0)
    assert ban is not None
    assert (ban.reason, ban.until) == ("malformed", 62.0)
    assert g.stats["malformed"] == 3
    assert g.check_source(STRANGER, "external", 3.0).action == "drop"


def test_malformed_and_limited_strikes_add_up() -> None:
    g = guard(only_invites(1, 1, strikes=3, window_s=10))
    assert g.limit_source(0, STRANGER, 0.0).allowed
    assert g.limit_source(0, STRANGER, 0.0).action == "respond"  # strike 1
    assert g.record_malformed(STRANGER, 0.0) is None  # strike 2
    assert g.record_malformed(STRANGER, 0.0) is not None  # strike 3: banned


def test_malformed_messages_spare_exempt_sources_and_strikes_null() -> None:
    exempt = guard({"bans": {"strikes": 1, "exempt": ["203.0.113.0/24"]}})
    assert exempt.record_malformed(STRANGER, 0.0) is None
    off = guard({"bans": {"strikes": None}})
    assert all(off.record_malformed(STRANGER, 0.0) is None for _ in range(100))
    assert off.bans(0.0) == []


def test_screen_skips_the_per_source_bucket_charged_before_parsing() -> None:
    g = guard(only_invites(1, 1))
    assert g.limit_source(0, STRANGER, 0.0).allowed
    for _ in range(5):  # parsed afterwards: not charged again
        assert g.screen("INVITE", STRANGER, None, "Phone/1.0", 0.0).allowed
