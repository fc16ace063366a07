"""Admission: concurrent calls and call rate per scope, all-or-nothing, hot reload."""

from __future__ import annotations

from guard_samples import admission

from sbc.guard.admission import Admission
from sbc.policy.admission import Limit, call_scopes, with_scopes

CARRIER = call_scopes("external", "carrier")  # ("global", "interface:external", "trunk:carrier")
PBX = call_scopes("internal", "pbx")


def with_trunks(data: dict[str, object], **trunks: Limit) -> Admission:
    extra = {f"trunk:{name}": lim for name, lim in trunks.items()}
    return Admission(with_scopes(admission(data), extra))


def test_call_scopes_name_global_interface_and_trunk() -> None:
    assert CARRIER == ("global", "interface:external", "trunk:carrier")
    assert call_scopes("external") == ("global", "interface:external")


def test_no_limits_admits_everything_and_counts_it() -> None:
    adm = Admission(admission())
    assert all(adm.admit(CARRIER, 0.0) is None for _ in range(1000))
    assert adm.active("global") == 1000
    assert adm.active("trunk:carrier") == 1000
    assert adm.stats["admitted"] == 1000


def test_max_calls_refuses_the_call_over_the_limit_with_retry_after() -> None:
    adm = with_trunks({}, carrier=Limit(max_calls=2))
    assert adm.admit(CARRIER, 0.0) is None
    assert adm.admit(CARRIER, 0.0) is None
    rejection = adm.admit(CARRIER, 0.0)
    assert rejection is not None
    assert (rejection.status, rejection.reason, rejection.scope) == (
        503,
        "Trunk Limit Reached",
        "trunk:carrier",
    )
    assert rejection.limit == "calls"
    assert dict(rejection.headers) == {"Retry-After": "5"}
    assert adm.admit(PBX, 0.0) is None  # another trunk is not affected


def test_a_refused_call_counts_nowhere() -> None:
    adm = with_trunks({"global": {"max_calls": 10}}, carrier=Limit(max_calls=1))
    assert adm.admit(CARRIER, 0.0) is None
    for _ in range(5):
        assert adm.admit(CARRIER, 0.0) is not None
    assert adm.active("global") == 1
    assert adm.active("interface:external") == 1
    assert adm.stats == {"admitted": 1, "rejected": 5, "released": 0}
    assert adm.rejected_by_scope == {"trunk:carrier": 5}


def test_a_refused_call_spends_no_rate_token() -> None:
    adm = with_trunks({"global": {"max_cps": 2}}, carrier=Limit(max_calls=1))
    assert adm.admit(CARRIER, 0.0) is None  # global: one of two tokens spent
    assert adm.admit(CARRIER, 0.0) is not None  # carrier full: global token kept
    assert adm.admit(PBX, 0.0) is None  # so this one still fits in the global rate
    rejection = adm.admit(PBX, 0.0)
    assert rejection is not None
    assert (rejection.scope, rejection.limit, rejection.reason) == (
        "global",
        "cps",
        "Call Rate Limit",
    )


def test_release_frees_room_in_every_scope() -> None:
    adm = Admission(admission({"interfaces": {"external": {"max_calls": 1}}}))
    assert adm.admit(CARRIER, 0.0) is None
    rejection = adm.admit(CARRIER, 0.0)
    assert rejection is not None
    assert rejection.reason == "Interface Limit Reached"
    adm.release(CARRIER)
    assert adm.active("interface:external") == 0
    assert adm.active("trunk:carrier") == 0
    assert adm.admit(CARRIER, 0.0) is None


def test_extra_releases_never_go_negative() -> None:
    adm = Admission(admission({"global": {"max_calls": 1}}))
    adm.release(CARRIER)
    adm.release(CARRIER)
    assert adm.active("global") == 0
    assert adm.admit(CARRIER, 0.0) is None
    assert adm.admit(CARRIER, 0.0) is not None  # still one call at most
    assert adm.scopes() == {"global": 1, "interface:external": 1, "trunk:carrier": 1}


def test_repeated_scopes_count_once() -> None:
    adm = Admission(admission({"global": {"max_calls": 1}}))
    assert adm.admit(["global", "global"], 0.0) is None
    assert adm.active("global") == 1
    adm.release(["global", "global"])
    assert adm.active("global") == 0


def test_cps_allows_one_second_of_burst_then_the_rate() -> None:
    adm = Admission(admission({"global": {"max_cps": 5}}))
    results = [adm.admit(CARRIER, 0.0) for _ in range(7)]
    assert [r is None for r in results] == [True] * 5 + [False, False]
    assert adm.admit(CARRIER, 0.1) is not None  # one call per 0.2 s
    assert adm.admit(CARRIER, 0.2) is None
    assert adm.admit(CARRIER, 0.2) is not None
    assert adm.admit(CARRIER, 0.4) is None


def test_fractional_cps() -> None:
    adm = Admission(admission({"interfaces": {"external": {"max_cps": 0.5}}}))
    assert adm.admit(CARRIER, 0.0) is None
    assert adm.admit(CARRIER, 1.0) is not None
    assert adm.admit(CARRIER, 2.0) is None


def test_zero_and_null_mean_unlimited() -> None:
    adm = Admission(admission({"global": {"max_calls": 0, "max_cps": None}}))
    assert adm.policy.limits == {}
    assert all(adm.admit(CARRIER, 0.0) is None for _ in range(100))


def test_rejection_status_and_retry_after_are_configurable() -> None:
    busy = Admission(
        admission({"global": {"max_calls": 1}, "rejection": {"status": 486, "retry_after_s": 60}})
    )
    busy.admit(CARRIER, 0.0)
    rejection = busy.admit(CARRIER, 0.0)
    assert rejection is not None
    assert (rejection.status, rejection.reason, dict(rejection.headers)) == (
        486,
        "Call Limit Reached",
        {"Retry-After": "60"},
    )
    # RFC 3261 §20.33 defines no Retry-After for 403: none is sent.
    forbidden = Admission(admission({"global": {"max_calls": 1}, "rejection": {"status": 403}}))
    forbidden.admit(CARRIER, 0.0)
    rejection = forbidden.admit(CARRIER, 0.0)
    assert rejection is not None
    assert (rejection.status, dict(rejection.headers)) == (403, {})


def test_reload_keeps_counts_and_applies_new_limits_to_calls_already_up() -> None:
    adm = Admission(admission())
    for _ in range(3):
        adm.admit(CARRIER, 0.0)
    adm.set_policy(with_scopes(admission(), {"trunk:carrier": Limit(max_calls=3)}))
    assert adm.active("trunk:carrier") == 3
    assert adm.admit(CARRIER, 0.0) is not None
    adm.release(CARRIER)
    assert adm.admit(CARRIER, 0.0) is None


def test_reload_keeps_a_rate_bucket_only_while_its_rate_is_unchanged() -> None:
    adm = Admission(admission({"global": {"max_cps": 2}}))
    adm.admit(PBX, 0.0)
    adm.admit(PBX, 0.0)
    adm.set_policy(admission({"global": {"max_cps": 2, "max_calls": 100}}))
    assert adm.admit(PBX, 0.0) is not None  # same rate: still empty
    adm.set_policy(admission({"global": {"max_cps": 3}}))
    assert adm.admit(PBX, 0.0) is None  # new rate: a new bucket


def test_with_scopes_overrides_and_drops_unlimited_entries() -> None:
    base = admission({"global": {"max_calls": 10}})
    merged = with_scopes(base, {"trunk:a": Limit(5, 1.5), "trunk:b": Limit(), "global": Limit(20)})
    assert dict(merged.limits) == {"global": Limit(20), "trunk:a": Limit(5, 1.5)}
    assert dict(base.limits) == {"global": Limit(10)}  # the original is untouched
