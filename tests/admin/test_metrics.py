"""The scrape-time collector: every family, its type, labels and values, in valid exposition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from sbc.admin.metrics import (
    CALL_DISPOSITIONS,
    MetricsSource,
    SbcCollector,
    build_registry,
    cumulative_buckets,
    render_metrics,
)


@dataclass
class FakeSource:
    """Plain values standing in for the runtime's counters."""

    core: dict[str, int] = field(
        default_factory=lambda: {
            "received": 1000,
            "parse_errors": 3,
            "forbidden": 7,
            "calls_started": 120,
            "call_errors": 1,
            "shed": 4,
            "screened": 9,
            "admission_rejected": 5,
            "failovers": 2,
            "dtmf_undelivered": 3,
            "no_route": 6,
            "rejected_by_route": 8,
        }
    )
    active: dict[str, int] = field(default_factory=lambda: {"carrier": 3, "pbx": 3})
    attempts: dict[tuple[str, str], int] = field(
        default_factory=lambda: {("carrier", "in"): 120, ("pbx", "out"): 118}
    )
    finals: dict[tuple[str, int], int] = field(
        default_factory=lambda: {("pbx", 200): 100, ("pbx", 486): 10, ("backup", 503): 2}
    )
    completed: dict[str, int] = field(default_factory=lambda: {"answered": 100, "busy": 10})
    setup: tuple[Sequence[float], Sequence[int], float] = ((0.1, 0.5, 1.0), (2, 5, 0, 1), 9.25)
    guard: dict[str, int] = field(
        default_factory=lambda: {
            "allowed": 900,
            "limited": 11,
            "banned": 2,
            "dropped_banned": 40,
            "acl_denied": 12,
            "scanners": 1,
        }
    )
    bans: int = 2
    admission: dict[str, int] = field(
        default_factory=lambda: {"global": 1, "interface:external": 2, "trunk:carrier": 2}
    )
    media: dict[str, float] = field(
        default_factory=lambda: {
            "packets": 5000.0,
            "octets": 860000.0,
            "lost": 25.0,
            "stun_malformed": 40.0,
            "stun_refused": 12.0,
        }
    )
    lag: float = 0.004
    reload_counts: tuple[int, int] = (3, 1)
    up: dict[str, bool] = field(default_factory=lambda: {"carrier": True, "pbx": False})
    cdr: dict[str, int] = field(default_factory=lambda: {"written": 110, "dropped": 1, "failed": 0})
    relay: dict[str, int] = field(
        default_factory=lambda: {
            "bindings": 40,
            "pending": 2,
            "hijack_refused": 5,
            "queries_hidden": 6,
            "pending_expired": 7,
            "refused_pending_cap": 8,
            "refused_binding_cap": 9,
        }
    )
    transport: dict[str, int] = field(
        default_factory=lambda: {
            "connections": 42,
            "refused_screened": 5,
            "refused_per_source": 300,
            "refused_pool_full": 2,
            "refused_handshakes": 7,
            "message_timeouts": 9,
            "oversized_datagrams": 4,
            "tls_handshake_failures": 6,
        }
    )
    leaks: dict[tuple[str, str], int] = field(
        default_factory=lambda: {("X-Origin", "scrubbed"): 4, ("start-line", "blocked"): 1}
    )
    kernel: dict[str, int] = field(
        default_factory=lambda: {"installed": 1, "bans": 3, "banned": 5000, "rate": 70}
    )

    def core_stats(self) -> Mapping[str, int]:
        return self.core

    def active_calls_by_trunk(self) -> Mapping[str, int]:
        return self.active

    def call_attempts_by_trunk(self) -> Mapping[tuple[str, str], int]:
        return self.attempts

    def final_responses(self) -> Mapping[tuple[str, int], int]:
        return self.finals

    def completions(self) -> Mapping[str, int]:
        return self.completed

    def setup_time(self) -> tuple[Sequence[float], Sequence[int], float]:
        return self.setup

    def guard_stats(self) -> Mapping[str, int]:
        return self.guard

    def active_bans(self) -> int:
        return self.bans

    def trunk_auth(self) -> Mapping[str, tuple[int, int]]:
        return {"pbx": (12, 1)}

    def admission_rejections(self) -> Mapping[str, int]:
        return self.admission

    def media_totals(self) -> Mapping[str, float]:
        return self.media

    def loop_lag_seconds(self) -> float:
        return self.lag

    def reloads(self) -> tuple[int, int]:
        return self.reload_counts

    def trunk_up(self) -> Mapping[str, bool]:
        return self.up

    def cdr_stats(self) -> Mapping[str, int]:
        return self.cdr

    def transcoding(self) -> Mapping[str, int]:
        return {"in_use": 3, "capacity": 100, "refused": 7}

    def registration_relay(self) -> Mapping[str, int]:
        return self.relay

    def transport_stats(self) -> Mapping[str, int]:
        return self.transport

    def topology_leaks(self) -> Mapping[tuple[str, str], int]:
        return self.leaks

    def kernel_filter(self) -> Mapping[str, int]:
        return self.kernel


#: Every sbc_ family: name as the text-format parser reports it -> type (the text
#: format 0.0.4 has no info type: sbc_build_info is a gauge of 1 there).
EXPECTED_TYPES = {
    "sbc_build_info": "gauge",
    "sbc_sip_messages_received": "counter",
    "sbc_sip_parse_errors": "counter",
    "sbc_sip_requests_forbidden": "counter",
    "sbc_sip_requests_screened": "counter",
    "sbc_calls_started": "counter",
    "sbc_call_errors": "counter",
    "sbc_call_failovers": "counter",
    "sbc_dtmf_to_info": "counter",
    "sbc_dtmf_from_info": "counter",
    "sbc_dtmf_undelivered": "counter",
    "sbc_sip_unknown_dialog": "counter",
    "sbc_sip_in_dialog_foreign": "counter",
    "sbc_sip_refusals_trimmed": "counter",
    "sbc_sip_refusals_suppressed": "counter",
    "sbc_sip_request_errors": "counter",
    "sbc_calls_refused": "counter",
    "sbc_calls_active": "gauge",
    "sbc_trunk_up": "gauge",
    "sbc_call_attempts": "counter",
    "sbc_final_responses": "counter",
    "sbc_calls_completed": "counter",
    "sbc_call_setup_seconds": "histogram",
    "sbc_guard_allowed": "counter",
    "sbc_rate_limited": "counter",
    "sbc_bans": "counter",
    "sbc_banned_dropped": "counter",
    "sbc_acl_denied": "counter",
    "sbc_scanners": "counter",
    "sbc_guard_malformed": "counter",
    "sbc_scanners_spared": "counter",
    "sbc_bans_active": "gauge",
    "sbc_auth_failures": "counter",
    "sbc_auth_alerts": "counter",
    "sbc_admission_rejections": "counter",
    "sbc_media_packets": "counter",
    "sbc_media_bytes": "counter",
    "sbc_media_packets_lost": "counter",
    "sbc_media_packets_rejected": "counter",
    "sbc_event_loop_lag_seconds": "gauge",
    "sbc_policy_reloads": "counter",
    "sbc_cdr_records": "counter",
    "sbc_transcoding_sessions": "gauge",
    "sbc_transcoding_capacity": "gauge",
    "sbc_transcoding_refused": "counter",
    "sbc_registration_relay_bindings": "gauge",
    "sbc_registration_relay_pending": "gauge",
    "sbc_registration_relay_hijacks_refused": "counter",
    "sbc_registration_relay_queries_hidden": "counter",
    "sbc_registration_relay_pending_expired": "counter",
    "sbc_registration_relay_refused": "counter",
    "sbc_transport_connections": "gauge",
    "sbc_transport_connections_refused": "counter",
    "sbc_transport_message_timeouts": "counter",
    "sbc_transport_oversized_datagrams": "counter",
    "sbc_tls_handshake_failures": "counter",
    "sbc_topology_leaks": "counter",
    "sbc_kernel_filter_up": "gauge",
    "sbc_kernel_filter_bans": "gauge",
    "sbc_kernel_filter_dropped": "counter",
}


def scrape(source: MetricsSource, accept: str | None = None) -> dict[str, Metric]:
    body, _ = render_metrics(build_registry(source), accept)
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def value(families: Mapping[str, Metric], sample: str, **labels: str) -> float:
    """The one sample named ``sample`` with exactly these labels."""
    for family in families.values():
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {sample}{labels}")


def sbc_families(families: Mapping[str, Metric]) -> dict[str, str]:
    return {name: f.type for name, f in families.items() if name.startswith("sbc_")}


# --- families and types ---------------------------------------------------------------


def test_every_family_is_present_with_its_type() -> None:
    assert sbc_families(scrape(FakeSource())) == EXPECTED_TYPES


def test_openmetrics_negotiation_gives_the_same_families_in_valid_openmetrics() -> None:
    body, content_type = render_metrics(
        build_registry(FakeSource()), "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f.type for f in openmetrics_families(text) if f.name.startswith("sbc_")}
    expected = {k: v for k, v in EXPECTED_TYPES.items() if k != "sbc_build_info"}
    assert families == {**expected, "sbc_build": "info"}


def test_plain_text_is_the_default_content_type() -> None:
    _, content_type = render_metrics(build_registry(FakeSource()))
    assert content_type.startswith("text/plain; version=0.0.4")


def test_process_and_platform_collectors_are_included() -> None:
    families = scrape(FakeSource())
    assert families["python_info"].type == "gauge"
    assert families["process_cpu_seconds"].type == "counter"  # Linux /proc is readable here
    assert value(families, "process_open_fds") > 0


# --- values and labels ----------------------------------------------------------------


def test_core_counters() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_sip_messages_received_total") == 1000
    assert value(families, "sbc_sip_parse_errors_total") == 3
    assert value(families, "sbc_sip_requests_forbidden_total") == 7
    assert value(families, "sbc_sip_requests_screened_total") == 9
    assert value(families, "sbc_calls_started_total") == 120
    assert value(families, "sbc_call_errors_total") == 1
    assert value(families, "sbc_call_failovers_total") == 2
    assert value(families, "sbc_dtmf_undelivered_total") == 3


def test_refused_calls_by_reason() -> None:
    families = scrape(FakeSource())
    refused = {s.labels["reason"]: s.value for s in families["sbc_calls_refused"].samples}
    assert refused == {"overload": 4, "admission": 5, "no_route": 6, "route_reject": 8}


def test_missing_core_keys_read_as_zero_and_unknown_keys_are_ignored() -> None:
    families = scrape(FakeSource(core={"received": 5, "invented": 99}))
    assert value(families, "sbc_sip_messages_received_total") == 5
    assert value(families, "sbc_calls_started_total") == 0
    assert value(families, "sbc_calls_refused_total", reason="admission") == 0
    assert not any("invented" in name for name in families)


def test_active_calls_and_trunk_state_per_trunk() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_calls_active", trunk="carrier") == 3
    assert value(families, "sbc_calls_active", trunk="pbx") == 3
    assert value(families, "sbc_trunk_up", trunk="carrier") == 1
    assert value(families, "sbc_trunk_up", trunk="pbx") == 0


def test_attempts_by_trunk_and_direction() -> None:
    families = scrape(FakeSource())
    samples = {
        (s.labels["trunk"], s.labels["direction"]): s.value
        for s in families["sbc_call_attempts"].samples
    }
    assert samples == {("carrier", "in"): 120, ("pbx", "out"): 118}


def test_final_responses_by_trunk_and_code() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_final_responses_total", trunk="pbx", code="200") == 100
    assert value(families, "sbc_final_responses_total", trunk="pbx", code="486") == 10
    assert value(families, "sbc_final_responses_total", trunk="backup", code="503") == 2
    assert len(families["sbc_final_responses"].samples) == 3


def test_completions_list_every_disposition_from_the_first_scrape() -> None:
    families = scrape(FakeSource(completed={"answered": 100, "busy": 10}))
    samples = {s.labels["disposition"]: s.value for s in families["sbc_calls_completed"].samples}
    assert set(samples) == set(CALL_DISPOSITIONS)
    assert samples["answered"] == 100
    assert samples["busy"] == 10
    assert samples["cancelled"] == 0


def test_setup_time_histogram_is_cumulative_with_count_and_sum() -> None:
    families = scrape(FakeSource(setup=((0.1, 0.5, 1.0), (2, 5, 0, 1), 9.25)))
    buckets = {
        s.labels["le"]: s.value
        for s in families["sbc_call_setup_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets == {"0.1": 2, "0.5": 7, "1.0": 7, "+Inf": 8}
    assert value(families, "sbc_call_setup_seconds_count") == 8
    assert value(families, "sbc_call_setup_seconds_sum") == 9.25


def test_guard_counters_and_active_bans() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_guard_allowed_total") == 900
    assert value(families, "sbc_rate_limited_total") == 11
    assert value(families, "sbc_bans_total") == 2
    assert value(families, "sbc_banned_dropped_total") == 40
    assert value(families, "sbc_acl_denied_total") == 12
    assert value(families, "sbc_scanners_total") == 1
    assert value(families, "sbc_bans_active") == 2


def test_trunk_auth_failures_and_alerts_per_trunk() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_auth_failures_total", trunk="pbx") == 12
    assert value(families, "sbc_auth_alerts_total", trunk="pbx") == 1


def test_admission_rejections_by_scope() -> None:
    families = scrape(FakeSource())
    samples = {s.labels["scope"]: s.value for s in families["sbc_admission_rejections"].samples}
    assert samples == {"global": 1, "interface:external": 2, "trunk:carrier": 2}


def test_media_loop_lag_reloads_and_cdrs() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_media_packets_total") == 5000
    assert value(families, "sbc_media_bytes_total") == 860000
    assert value(families, "sbc_media_packets_lost_total") == 25
    rejected = "sbc_media_packets_rejected_total"
    assert value(families, rejected, reason="stun_malformed") == 40
    assert value(families, rejected, reason="stun_refused") == 12
    assert value(families, rejected, reason="packet_errors") == 0  # present from the start
    assert value(families, "sbc_event_loop_lag_seconds") == pytest.approx(0.004)
    assert value(families, "sbc_policy_reloads_total", result="applied") == 3
    assert value(families, "sbc_policy_reloads_total", result="refused") == 1
    assert value(families, "sbc_cdr_records_total", result="written") == 110
    assert value(families, "sbc_cdr_records_total", result="dropped") == 1
    assert value(families, "sbc_cdr_records_total", result="failed") == 0
    assert value(families, "sbc_transcoding_sessions") == 3
    assert value(families, "sbc_transcoding_capacity") == 100
    assert value(families, "sbc_transcoding_refused_total") == 7


def test_registration_relay_state_and_refusals() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_registration_relay_bindings") == 40
    assert value(families, "sbc_registration_relay_pending") == 2
    assert value(families, "sbc_registration_relay_hijacks_refused_total") == 5
    assert value(families, "sbc_registration_relay_queries_hidden_total") == 6
    assert value(families, "sbc_registration_relay_pending_expired_total") == 7
    assert value(families, "sbc_registration_relay_refused_total", reason="pending_cap") == 8
    assert value(families, "sbc_registration_relay_refused_total", reason="binding_cap") == 9


def test_transport_edge_counters() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_transport_connections") == 42
    refused = {
        s.labels["reason"]: s.value for s in families["sbc_transport_connections_refused"].samples
    }
    assert refused == {"screened": 5, "per_source": 300, "pool_full": 2, "handshakes": 7}
    assert value(families, "sbc_transport_message_timeouts_total") == 9
    assert value(families, "sbc_transport_oversized_datagrams_total") == 4
    assert value(families, "sbc_tls_handshake_failures_total") == 6
    empty = scrape(FakeSource(transport={}))
    assert value(empty, "sbc_transport_connections_refused_total", reason="handshakes") == 0


def test_topology_leaks_by_part_and_action() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_topology_leaks_total", header="X-Origin", action="scrubbed") == 4
    assert value(families, "sbc_topology_leaks_total", header="start-line", action="blocked") == 1


def test_kernel_filter_state_and_drops_by_reason() -> None:
    families = scrape(FakeSource())
    assert value(families, "sbc_kernel_filter_up") == 1
    assert value(families, "sbc_kernel_filter_bans") == 3
    assert value(families, "sbc_kernel_filter_dropped_total", reason="banned") == 5000
    assert value(families, "sbc_kernel_filter_dropped_total", reason="rate") == 70
    assert value(families, "sbc_kernel_filter_dropped_total", reason="trunk_rate") == 0
    off = scrape(FakeSource(kernel={}))
    assert value(off, "sbc_kernel_filter_up") == 0


def test_build_info_carries_the_version() -> None:
    registry = build_registry(FakeSource())
    assert registry.get_sample_value("sbc_build_info", {"version": "1.2.3"}) is None
    collector = SbcCollector(FakeSource(), build_version="1.2.3")
    samples = [s for family in collector.collect() for s in family.samples]
    assert any(s.name == "sbc_build_info" and s.labels == {"version": "1.2.3"} for s in samples)


def test_an_empty_sbc_still_exports_every_family() -> None:
    empty = FakeSource(
        core={},
        active={},
        attempts={},
        finals={},
        completed={},
        setup=((0.1, 1.0), (0, 0, 0), 0.0),
        guard={},
        bans=0,
        admission={},
        media={},
        lag=0.0,
        reload_counts=(0, 0),
        up={},
        cdr={},
        relay={},
        leaks={},
        kernel={},
    )
    assert sbc_families(scrape(empty)) == EXPECTED_TYPES


# --- read at scrape time, isolated ---------------------------------------------------


def test_values_are_read_at_each_scrape_not_at_registration() -> None:
    source = FakeSource()
    registry = build_registry(source)
    assert registry.get_sample_value("sbc_calls_started_total") == 120
    source.core["calls_started"] = 121
    source.active["carrier"] = 0
    assert registry.get_sample_value("sbc_calls_started_total") == 121
    assert registry.get_sample_value("sbc_calls_active", {"trunk": "carrier"}) == 0


def test_registries_are_independent_of_each_other_and_of_the_default_one() -> None:
    first = build_registry(FakeSource(lag=0.5))
    second = build_registry(FakeSource(lag=0.25))
    assert first.get_sample_value("sbc_event_loop_lag_seconds") == 0.5
    assert second.get_sample_value("sbc_event_loop_lag_seconds") == 0.25
    assert REGISTRY.get_sample_value("sbc_event_loop_lag_seconds") is None


def test_a_failing_source_method_drops_only_its_own_families() -> None:
    class Broken(FakeSource):
        def guard_stats(self) -> Mapping[str, int]:
            raise RuntimeError("bug")

    families = sbc_families(scrape(Broken()))
    guard_families = {
        "sbc_guard_allowed",
        "sbc_rate_limited",
        "sbc_bans",
        "sbc_banned_dropped",
        "sbc_acl_denied",
        "sbc_scanners",
        "sbc_guard_malformed",
        "sbc_scanners_spared",
        "sbc_bans_active",
    }
    assert families == {k: v for k, v in EXPECTED_TYPES.items() if k not in guard_families}


def test_a_malformed_histogram_is_left_out_not_raised() -> None:
    families = sbc_families(scrape(FakeSource(setup=((0.1, 1.0), (1, 2), 3.0))))
    assert "sbc_call_setup_seconds" not in families
    assert "sbc_calls_started" in families


# --- the bucket conversion ---------------------------------------------------------------


def test_cumulative_buckets_end_with_inf_holding_the_count() -> None:
    assert cumulative_buckets([0.05, 1.0], [1, 0, 4]) == [
        ("0.05", 1.0),
        ("1.0", 1.0),
        ("+Inf", 5.0),
    ]


def test_cumulative_buckets_with_no_bounds_is_a_single_inf_bucket() -> None:
    assert cumulative_buckets([], [3]) == [("+Inf", 3.0)]


@pytest.mark.parametrize(
    ("bounds", "counts"),
    [
        ([0.1, 1.0], [1, 2]),  # no +Inf slot
        ([0.1, 1.0], [1, 2, 3, 4]),  # one too many
        ([1.0, 0.1], [1, 2, 3]),  # descending
        ([0.1, 0.1], [1, 2, 3]),  # repeated bound
        ([0.1, float("inf")], [1, 2, 3]),  # +Inf is implicit, never a bound
        ([0.1], [1, -1]),  # negative count
    ],
)
def test_cumulative_buckets_refuse_shapes_prometheus_would_misread(
    bounds: list[float], counts: list[int]
) -> None:
    with pytest.raises(ValueError, match=r"bound|count"):
        cumulative_buckets(bounds, counts)
