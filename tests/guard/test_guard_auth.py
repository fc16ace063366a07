"""Failed digest authentications: strangers are banned, a trunk's addresses never are.

Anyone can forge a UDP request from a trunk's address with a bogus
``Authorization``: those failures are counted per trunk and per username and
raise an alert (counter and one log line per window), never a ban.
"""

from __future__ import annotations

from guard_samples import CARRIER_IP, STRANGER, guard
from structlog.testing import capture_logs

from sbc.guard.bans import Ban

POLICY = {"bans": {"auth_failures": 3, "window_s": 30, "duration_s": 100}}


def test_failures_from_a_trunk_never_ban_its_address() -> None:
    g = guard(POLICY)
    for i in range(50):
        assert g.record_auth_failure(CARRIER_IP, float(i), trunk="carrier", user="sbc") is None
    assert g.bans(50.0) == []
    assert g.check("INVITE", CARRIER_IP, "external", "carrier", "Phone/1.0", 50.0).allowed
    assert g.auth_failures == {"carrier": 50}


def test_a_stranger_is_still_banned_for_its_failures() -> None:
    g = guard(POLICY)
    assert g.record_auth_failure(STRANGER, 0.0) is None
    assert g.record_auth_failure(STRANGER, 1.0) is None
    assert g.record_auth_failure(STRANGER, 2.0) == Ban(STRANGER, "auth", 2.0, 102.0)


def test_a_trunk_passing_the_threshold_raises_one_alert_per_window() -> None:
    g = guard(POLICY)
    with capture_logs() as logs:
        for i in range(10):  # 10 failures in 10 s: the threshold (3) is passed once
            g.record_auth_failure(CARRIER_IP, float(i), trunk="carrier", user="sbc")
    assert g.auth_alerts == {"carrier": 1}
    [line] = [e for e in logs if e["event"] == "guard.auth_alert"]
    assert line["trunk"] == "carrier"
    assert line["failures"] == 3
    assert line["log_level"] == "warning"
    # The next window alerts again.
    for i in range(3):
        g.record_auth_failure(CARRIER_IP, 40.0 + i, trunk="carrier", user="sbc")
    assert g.auth_alerts == {"carrier": 2}


def test_failures_are_counted_per_user_too() -> None:
    """One user hammered among a trunk's many: the user crosses the threshold
    on its own, while the trunk-wide count has its own window."""
    g = guard({"bans": {"auth_failures": 3, "window_s": 30}})
    with capture_logs() as logs:
        g.record_auth_failure(CARRIER_IP, 0.0, trunk="carrier", user="a")
        g.record_auth_failure(CARRIER_IP, 0.0, trunk="carrier", user="b")
        g.record_auth_failure(CARRIER_IP, 0.0, trunk="carrier", user="c")  # trunk: 3
        for t in (31.0, 32.0, 33.0):  # the trunk window renewed; "d" alone reaches 3
            g.record_auth_failure(CARRIER_IP, t, trunk="carrier", user="d")
    alerts = [e for e in logs if e["event"] == "guard.auth_alert"]
    assert [(e["scope"], e.get("user")) for e in alerts] == [("trunk", "c"), ("user", "d")]
    assert g.auth_alerts == {"carrier": 2}


def test_alert_log_lines_are_rate_limited_not_per_failure() -> None:
    """Thousands of forged usernames each passing the threshold: the counter
    counts every alert, the log says so once per window and trunk."""
    g = guard({"bans": {"auth_failures": 1, "window_s": 60}})
    with capture_logs() as logs:
        for i in range(5000):
            g.record_auth_failure(CARRIER_IP, i * 0.01, trunk="carrier", user=f"u{i}")
    assert g.auth_alerts["carrier"] == 5000
    lines = [e for e in logs if e["event"] == "guard.auth_alert"]
    assert len(lines) == 1
    with capture_logs() as logs:
        g.record_auth_failure(CARRIER_IP, 61.0, trunk="carrier", user="late")
    [line] = [e for e in logs if e["event"] == "guard.auth_alert"]
    assert line["suppressed"] == 4999


def test_the_username_table_is_bounded_under_forged_names() -> None:
    g = guard({"bans": {"auth_failures": 2}})
    for i in range(100_000):
        g.record_auth_failure(CARRIER_IP, 0.0, trunk="carrier", user=f"forged-{i}")
    assert g.auth_users_tracked() <= 4096


def test_a_logged_username_is_shortened_and_printable() -> None:
    g = guard({"bans": {"auth_failures": 1}})
    with capture_logs() as logs:
        g.record_auth_failure(CARRIER_IP, 0.0, trunk="carrier", user="x\r\n" + "y" * 500)
    [line] = [e for e in logs if e["event"] == "guard.auth_alert"]
    assert "\r" not in line["user"]
    assert "\n" not in line["user"]
    assert len(line["user"]) <= 70


def test_auth_failures_null_counts_but_never_alerts() -> None:
    g = guard({"bans": {"auth_failures": None}})
    for i in range(100):
        g.record_auth_failure(CARRIER_IP, float(i), trunk="carrier", user="sbc")
    assert g.auth_failures == {"carrier": 100}
    assert g.auth_alerts == {}
