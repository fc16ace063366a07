"""Prometheus metrics for ``GET /metrics``, produced at scrape time.

Nothing on the per-message path touches a prometheus object: the core, the
guard, admission and the CDR writer bump plain ints in dicts, and
:class:`SbcCollector` reads them through :class:`MetricsSource` only when
Prometheus scrapes. A scrape therefore costs one pass over a few dicts, and
a message costs nothing more than a dict increment.

Names follow the Prometheus conventions (``sbc_`` namespace, base units,
``_total`` on counters). Calls per second is not exported as a gauge: it is
``rate(sbc_calls_started_total[1m])`` in PromQL, exact over any window
and never stale. Answer-seizure ratio is
``rate(sbc_calls_completed_total{disposition="answered"}[5m])`` over the
sum of ``rate(sbc_calls_completed_total[5m])``.

Every family is emitted on every scrape, with zero values before anything
happened, so ``rate()`` and alerts see a series from the first scrape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

import structlog
from prometheus_client import exposition
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from sbc.cdr.record import Disposition
from sbc.media.stats import REJECTED as MEDIA_REJECTED

log = structlog.get_logger("sbc.admin.metrics")


class MetricsSource(Protocol):
    """The plain counters the collector reads at scrape time (the runtime implements it)."""

    def core_stats(self) -> Mapping[str, int]: ...  # received, parse_errors, forbidden,

    # calls_started, call_errors, shed, screened, admission_rejected, failovers, no_route,
    # rejected_by_route

    def active_calls_by_trunk(self) -> Mapping[str, int]: ...  # trunk -> calls up (in or out)

    def call_attempts_by_trunk(self) -> Mapping[tuple[str, str], int]: ...  # (trunk, in|out)

    def final_responses(self) -> Mapping[tuple[str, int], int]: ...  # (egress trunk, status)

    def completions(self) -> Mapping[str, int]: ...  # disposition -> ended calls

    def setup_time(self) -> tuple[Sequence[float], Sequence[int], float]:
        """Upper bounds in seconds (ascending, +Inf excluded), NON-cumulative counts
        per bucket with one extra final count for +Inf, and the sum of observations."""
        ...

    def guard_stats(self) -> Mapping[str, int]: ...  # allowed, limited, banned,

    # dropped_banned, acl_denied, scanners, malformed, scanners_spared

    def active_bans(self) -> int: ...

    def trunk_auth(self) -> Mapping[str, tuple[int, int]]: ...  # trunk -> (failures, alerts)

    def admission_rejections(self) -> Mapping[str, int]: ...  # scope -> count

    def media_totals(self) -> Mapping[str, float]: ...  # packets, octets, lost (cumulative)

    # ... and the MEDIA_REJECTED keys (sbc.media.stats): packets the relay refused, by reason

    def loop_lag_seconds(self) -> float: ...

    def reloads(self) -> tuple[int, int]: ...  # (applied, refused) since start

    def trunk_up(self) -> Mapping[str, bool]: ...

    def cdr_stats(self) -> Mapping[str, int]: ...  # written, dropped, failed

    def transcoding(self) -> Mapping[str, int]: ...  # in_use, capacity, refused (since start)

    # bindings, pending (now) and the counters of sbc.b2bua.registrar.STATS: hijack_refused,
    # queries_hidden, pending_expired, refused_pending_cap, refused_binding_cap
    def registration_relay(self) -> Mapping[str, int]: ...

    def transport_stats(self) -> Mapping[str, int]: ...  # TransportStats fields (sbc.transport)

    def topology_leaks(self) -> Mapping[tuple[str, str], int]: ...  # (header, action) -> messages

    def kernel_filter(self) -> Mapping[str, int]: ...  # installed, bans, banned, rate, trunk_rate


# --- the names, as data: (source key, metric name, help) ------------------------------

#: ``core_stats`` keys exported one counter each.
CORE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("received", "sbc_sip_messages_received_total", "SIP messages received, before parsing."),
    ("parse_errors", "sbc_sip_parse_errors_total", "Messages that failed to parse (400 sent)."),
    (
        "forbidden",
        "sbc_sip_requests_forbidden_total",
        "Out-of-dialog requests from no trunk, answered 403.",
    ),
    (
        "screened",
        "sbc_sip_requests_screened_total",
        "Requests refused by bans, ACLs, scanner rules or rate limits (security.yaml).",
    ),
    ("calls_started", "sbc_calls_started_total", "Calls admitted and sent toward a trunk."),
    ("call_errors", "sbc_call_errors_total", "Calls torn down by an internal error."),
    ("failovers", "sbc_call_failovers_total", "B-legs retried on the route's next trunk."),
    ("dtmf_to_info", "sbc_dtmf_to_info_total", "RFC 4733 digits sent on as SIP INFO."),
    ("dtmf_from_info", "sbc_dtmf_from_info_total", "SIP INFO digits sent on as RFC 4733."),
    (
        "dtmf_undelivered",
        "sbc_dtmf_undelivered_total",
        "SIP INFO digits towards a leg that negotiated no telephone-event.",
    ),
    ("unknown_dialog", "sbc_sip_unknown_dialog_total", "In-dialog requests for no dialog (481)."),
    (
        "foreign_in_dialog",
        "sbc_sip_in_dialog_foreign_total",
        "In-dialog requests and ACKs from a source that is not the leg's peer (403 or dropped).",
    ),
    (
        "refusals_trimmed",
        "sbc_sip_refusals_trimmed_total",
        "Stateless refusals cut to their minimal form to stay no larger than the request.",
    ),
    (
        "refusals_suppressed",
        "sbc_sip_refusals_suppressed_total",
        "Stateless refusals not sent: even their minimal form was larger than the request.",
    ),
    (
        "request_errors",
        "sbc_sip_request_errors_total",
        "Requests whose handling raised outside any call (answered 500).",
    ),
)

#: ``core_stats`` keys that are a reason for refusing a new call, as ``reason`` labels.
CALL_REFUSALS: tuple[tuple[str, str], ...] = (
    ("shed", "overload"),
    ("admission_rejected", "admission"),
    ("no_route", "no_route"),
    ("rejected_by_route", "route_reject"),
)

#: ``guard_stats`` keys exported one counter each (docs/security.md).
GUARD_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("allowed", "sbc_guard_allowed_total", "Requests that passed screening."),
    ("limited", "sbc_rate_limited_total", "Requests refused by a per-source or per-trunk limit."),
    ("banned", "sbc_bans_total", "Sources banned (scanner, rate or manual)."),
    ("dropped_banned", "sbc_banned_dropped_total", "Messages from banned sources dropped."),
    ("acl_denied", "sbc_acl_denied_total", "Messages refused by an interface ACL."),
    ("scanners", "sbc_scanners_total", "Scanner User-Agents seen and banned."),
    (
        "malformed",
        "sbc_guard_malformed_total",
        "Unparsable messages from non-trunk sources, each a strike toward a ban.",
    ),
    (
        "scanners_spared",
        "sbc_scanners_spared_total",
        "Scanner User-Agents from a source in a call or with a relay binding: not banned.",
    ),
)

#: ``media_totals`` keys: (key, metric name, help, unit).
MEDIA_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    ("packets", "sbc_media_packets_total", "RTP packets relayed, both directions, all calls.", ""),
    ("octets", "sbc_media_bytes_total", "RTP bytes relayed (UDP payload), all calls.", "bytes"),
    (
        "lost",
        "sbc_media_packets_lost_total",
        "RTP packets lost before the SBC (sequence gaps, RFC 3550 section 6.4.1).",
        "",
    ),
)

#: ``registration_relay`` counters exported one each (docs/policies.md, registration relay).
RELAY_COUNTERS: tuple[tuple[str, str, str], ...] = (
    (
        "hijack_refused",
        "sbc_registration_relay_hijacks_refused_total",
        "REGISTERs from another source than a binding's own that the registrar did not"
        " accept: the binding stayed.",
    ),
    (
        "queries_hidden",
        "sbc_registration_relay_queries_hidden_total",
        "Registration queries from another source than the binding's, answered without it.",
    ),
    (
        "pending_expired",
        "sbc_registration_relay_pending_expired_total",
        "Relayed REGISTERs the registrar never answered (timeout; the phone got 408).",
    ),
)
#: ``registration_relay`` refusal keys, as ``reason`` labels.
RELAY_REFUSALS: tuple[tuple[str, str], ...] = (
    ("refused_pending_cap", "pending_cap"),
    ("refused_binding_cap", "binding_cap"),
)

#: ``transport_stats`` keys of connections refused at accept, as ``reason`` labels.
TRANSPORT_REFUSALS: tuple[tuple[str, str], ...] = (
    ("refused_screened", "screened"),
    ("refused_per_source", "per_source"),
    ("refused_pool_full", "pool_full"),
    ("refused_handshakes", "handshakes"),
)

#: ``transport_stats`` keys exported one counter each (docs/security.md, "Connections
#: and message sizes").
TRANSPORT_COUNTERS: tuple[tuple[str, str, str], ...] = (
    (
        "message_timeouts",
        "sbc_transport_message_timeouts_total",
        "TCP/TLS connections closed because a message was not complete in time.",
    ),
    (
        "oversized_datagrams",
        "sbc_transport_oversized_datagrams_total",
        "UDP datagrams over transport.max_udp_message, dropped before parsing.",
    ),
    (
        "tls_handshake_failures",
        "sbc_tls_handshake_failures_total",
        "TLS handshakes that failed, were refused or timed out, both ways.",
    ),
)

CDR_RESULTS = ("written", "dropped", "failed")
CALL_DISPOSITIONS = tuple(d.value for d in Disposition)


#: ``kernel_filter`` keys of packets dropped in the kernel, as ``reason`` labels.
KERNEL_DROP_REASONS = ("banned", "rate", "trunk_rate")


def _build_version() -> str:
    try:
        return version("sbc")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class SbcCollector(Collector):
    """Builds every ``sbc_`` family from a :class:`MetricsSource` at each scrape.

    Each group of families is built on its own: if one source method fails
    (a bug), that group is logged and left out, and the rest of the scrape is
    still served — a broken counter must not blind the whole dashboard.
    """

    def __init__(self, source: MetricsSource, build_version: str | None = None) -> None:
        self.source = source
        self.build_version = build_version if build_version is not None else _build_version()
        self._groups: tuple[Callable[[], list[Metric]], ...] = (
            self._build,
            self._core,
            self._trunks,
            self._calls,
            self._setup_time,
            self._guard,
            self._trunk_auth,
            self._admission,
            self._media,
            self._transcoding,
            self._registration_relay,
            self._transport,
            self._leaks,
            self._kernel_filter,
            self._runtime,
        )

    def collect(self) -> Iterator[Metric]:
        for group in self._groups:
            try:
                families = group()
            except Exception:  # one broken counter must not fail the scrape
                log.exception("metrics.group_failed", group=group.__name__.lstrip("_"))
                continue
            yield from families

    # --- the groups -------------------------------------------------------------------

    def _build(self) -> list[Metric]:
        info = InfoMetricFamily("sbc_build", "The running sbc version.")
        info.add_metric([], {"version": self.build_version})
        return [info]

    def _core(self) -> list[Metric]:
        stats = self.source.core_stats()
        families: list[Metric] = [
            CounterMetricFamily(name, text, value=stats.get(key, 0))
            for key, name, text in CORE_COUNTERS
        ]
        refused = CounterMetricFamily(
            "sbc_calls_refused_total",
            "New calls refused before any B-leg, by reason (overload, admission, routing).",
            labels=["reason"],
        )
        for key, reason in CALL_REFUSALS:
            refused.add_metric([reason], stats.get(key, 0))
        families.append(refused)
        return families

    def _trunks(self) -> list[Metric]:
        active = GaugeMetricFamily(
            "sbc_calls_active",
            "Calls up now per trunk (a call counts on its ingress and its egress trunk).",
            labels=["trunk"],
        )
        for trunk, count in sorted(self.source.active_calls_by_trunk().items()):
            active.add_metric([trunk], count)
        up = GaugeMetricFamily(
            "sbc_trunk_up", "1 when the trunk is considered reachable (OPTIONS).", labels=["trunk"]
        )
        for trunk, is_up in sorted(self.source.trunk_up().items()):
            up.add_metric([trunk], 1.0 if is_up else 0.0)
        return [active, up]

    def _calls(self) -> list[Metric]:
        attempts = CounterMetricFamily(
            "sbc_call_attempts_total",
            "Call attempts per trunk: direction in = from the trunk, out = toward it.",
            labels=["trunk", "direction"],
        )
        for (trunk, direction), count in sorted(self.source.call_attempts_by_trunk().items()):
            attempts.add_metric([trunk, direction], count)
        finals = CounterMetricFamily(
            "sbc_final_responses_total",
            "Final responses received from egress trunks, by status code.",
            labels=["trunk", "code"],
        )
        for (trunk, code), count in sorted(self.source.final_responses().items()):
            finals.add_metric([trunk, str(code)], count)
        completed = CounterMetricFamily(
            "sbc_calls_completed_total", "Ended calls by disposition.", labels=["disposition"]
        )
        for disposition, count in _with_zeros(self.source.completions(), CALL_DISPOSITIONS):
            completed.add_metric([disposition], count)
        return [attempts, finals, completed]

    def _setup_time(self) -> list[Metric]:
        bounds, counts, total = self.source.setup_time()
        return [
            HistogramMetricFamily(
                "sbc_call_setup_seconds",
                "Setup time of answered calls: the caller's INVITE received to the answer.",
                buckets=cumulative_buckets(bounds, counts),
                sum_value=total,
                unit="seconds",
            )
        ]

    def _guard(self) -> list[Metric]:
        stats = self.source.guard_stats()
        families: list[Metric] = [
            CounterMetricFamily(name, text, value=stats.get(key, 0))
            for key, name, text in GUARD_COUNTERS
        ]
        families.append(
            GaugeMetricFamily(
                "sbc_bans_active", "Sources banned now.", value=self.source.active_bans()
            )
        )
        return families

    def _trunk_auth(self) -> list[Metric]:
        failures = CounterMetricFamily(
            "sbc_auth_failures_total",
            "Failed digest authentications from a require_auth trunk's addresses (never banned).",
            labels=["trunk"],
        )
        alerts = CounterMetricFamily(
            "sbc_auth_alerts_total",
            "A trunk, or one username on it, reached bans.auth_failures within bans.window_s.",
            labels=["trunk"],
        )
        for trunk, (failed, alerted) in sorted(self.source.trunk_auth().items()):
            failures.add_metric([trunk], failed)
            alerts.add_metric([trunk], alerted)
        return [failures, alerts]

    def _admission(self) -> list[Metric]:
        rejections = CounterMetricFamily(
            "sbc_admission_rejections_total",
            "Calls refused by an admission limit, by scope (global, interface:X, trunk:Y).",
            labels=["scope"],
        )
        for scope, count in sorted(self.source.admission_rejections().items()):
            rejections.add_metric([scope], count)
        return [rejections]

    def _media(self) -> list[Metric]:
        totals = self.source.media_totals()
        families: list[Metric] = [
            CounterMetricFamily(name, text, value=totals.get(key, 0.0), unit=unit)
            for key, name, text, unit in MEDIA_COUNTERS
        ]
        rejected = CounterMetricFamily(
            "sbc_media_packets_rejected_total",
            "Packets refused on relay ports, by reason: malformed STUN/RTP/RTCP, STUN not"
            " answered to a stranger, SRTP authentication failed, handling errors.",
            labels=["reason"],
        )
        for reason in MEDIA_REJECTED:
            rejected.add_metric([reason], totals.get(reason, 0.0))
        families.append(rejected)
        return families

    def _transcoding(self) -> list[Metric]:
        pool = self.source.transcoding()
        return [
            GaugeMetricFamily(
                "sbc_transcoding_sessions",
                "Calls transcoding now (each holds one slot of transcoding.max_sessions).",
                value=pool.get("in_use", 0),
            ),
            GaugeMetricFamily(
                "sbc_transcoding_capacity",
                "Calls this node may transcode at once (transcoding.max_sessions).",
                value=pool.get("capacity", 0),
            ),
            CounterMetricFamily(
                "sbc_transcoding_refused_total",
                "Calls refused (503/488) because transcoding was full.",
                value=pool.get("refused", 0),
            ),
        ]

    def _registration_relay(self) -> list[Metric]:
        relay = self.source.registration_relay()
        families: list[Metric] = [
            GaugeMetricFamily(
                "sbc_registration_relay_bindings",
                "Phones registered through the relay now (confirmed by the registrar).",
                value=relay.get("bindings", 0),
            ),
            GaugeMetricFamily(
                "sbc_registration_relay_pending",
                "Relayed REGISTERs waiting for the registrar's answer now.",
                value=relay.get("pending", 0),
            ),
        ]
        families.extend(
            CounterMetricFamily(name, text, value=relay.get(key, 0))
            for key, name, text in RELAY_COUNTERS
        )
        refused = CounterMetricFamily(
            "sbc_registration_relay_refused_total",
            "REGISTERs refused 503 by a relay cap (max_pending*, max_bindings*), by cap.",
            labels=["reason"],
        )
        for key, reason in RELAY_REFUSALS:
            refused.add_metric([reason], relay.get(key, 0))
        families.append(refused)
        return families

    def _transport(self) -> list[Metric]:
        stats = self.source.transport_stats()
        families: list[Metric] = [
            GaugeMetricFamily(
                "sbc_transport_connections",
                "TCP and TLS connections open or being opened.",
                value=stats.get("connections", 0),
            )
        ]
        refused = CounterMetricFamily(
            "sbc_transport_connections_refused_total",
            "Inbound TCP/TLS connections closed at accept: screened (banned or ACL),"
            " per_source (cap), pool_full, handshakes (TLS handshakes per source).",
            labels=["reason"],
        )
        for key, reason in TRANSPORT_REFUSALS:
            refused.add_metric([reason], stats.get(key, 0))
        families.append(refused)
        families.extend(
            CounterMetricFamily(name, text, value=stats.get(key, 0))
            for key, name, text in TRANSPORT_COUNTERS
        )
        return families

    def _leaks(self) -> list[Metric]:
        leaks = CounterMetricFamily(
            "sbc_topology_leaks_total",
            "Messages the leak guard caught naming another side or the other leg, by part"
            " (header name, start-line, or the body's content type) and action"
            " (scrubbed, blocked, logged): topology.leak_guard, docs/security.md.",
            labels=["header", "action"],
        )
        for (header, action), count in sorted(self.source.topology_leaks().items()):
            leaks.add_metric([header, action], count)
        return [leaks]

    def _kernel_filter(self) -> list[Metric]:
        stats = self.source.kernel_filter()
        dropped = CounterMetricFamily(
            "sbc_kernel_filter_dropped_total",
            "Packets to the SIP listeners the kernel filter (nftables) dropped: banned"
            " (a ban in force), rate (a stranger over kernel_filter.stranger_pps),"
            " trunk_rate (a trunk address over its ceiling).",
            labels=["reason"],
        )
        for reason in KERNEL_DROP_REASONS:
            dropped.add_metric([reason], stats.get(reason, 0))
        return [
            GaugeMetricFamily(
                "sbc_kernel_filter_up",
                "1 while the kernel filter's nftables table is installed (kernel_filter.mode).",
                value=stats.get("installed", 0),
            ),
            GaugeMetricFamily(
                "sbc_kernel_filter_bans",
                "Bans held in the kernel filter's sets (follows sbc_bans_active within ~1 s).",
                value=stats.get("bans", 0),
            ),
            dropped,
        ]

    def _runtime(self) -> list[Metric]:
        lag = GaugeMetricFamily(
            "sbc_event_loop_lag_seconds",
            "How late the signalling event loop runs its callbacks (estimate).",
            value=self.source.loop_lag_seconds(),
            unit="seconds",
        )
        applied, refused = self.source.reloads()
        reloads = CounterMetricFamily(
            "sbc_policy_reloads_total",
            "Policy reloads since start: applied, or refused (the old policy kept).",
            labels=["result"],
        )
        reloads.add_metric(["applied"], applied)
        reloads.add_metric(["refused"], refused)
        cdrs = CounterMetricFamily(
            "sbc_cdr_records_total",
            "Call detail records: written, dropped (queue full) or failed (store error).",
            labels=["result"],
        )
        for result, count in _with_zeros(self.source.cdr_stats(), CDR_RESULTS):
            cdrs.add_metric([result], count)
        return [lag, reloads, cdrs]


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Turn per-bucket counts into Prometheus' cumulative ``le`` buckets, +Inf last.

    ``counts`` has one entry per bound plus one for +Inf. Raises ValueError on
    a shape Prometheus would misread (the collector then omits the family).
    """
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"{len(bounds)} bounds need {len(bounds) + 1} counts, got {len(counts)}")
    if any(not math.isfinite(b) for b in bounds) or any(
        low >= high for low, high in itertools.pairwise(bounds)
    ):
        raise ValueError(f"bucket bounds must be finite and strictly ascending: {list(bounds)}")
    if any(count < 0 for count in counts):
        raise ValueError(f"negative bucket count: {list(counts)}")
    running = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip([*bounds, math.inf], counts, strict=True):
        running += count
        buckets.append((_le(bound), float(running)))
    return buckets


def _le(bound: float) -> str:
    """An ``le`` label as Prometheus clients write it: ``0.5``, ``1.0``, ``+Inf``."""
    return "+Inf" if bound == math.inf else repr(float(bound))


def _with_zeros(values: Mapping[str, int], known: Iterable[str]) -> list[tuple[str, int]]:
    """Known label values first (zero if absent, so the series exist), then any others."""
    merged = dict.fromkeys(known, 0)
    merged.update(values)
    return list(merged.items())


def build_registry(source: MetricsSource) -> CollectorRegistry:
    """A fresh registry (never the global default one) with the sbc, process,
    platform and GC collectors, so tests and several instances never clash."""
    registry = CollectorRegistry()
    registry.register(SbcCollector(source))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """Scrape ``registry``: (body, Content-Type).

    Without ``accept`` (or one asking for nothing better) this is the classic
    text format 0.0.4; an ``Accept`` naming ``application/openmetrics-text``
    gets OpenMetrics, as Prometheus negotiates it.
    """
    if not accept:
        return exposition.generate_latest(registry), exposition.CONTENT_TYPE_PLAIN_0_0_4
    encoder, content_type = exposition.choose_encoder(accept)
    return encoder(registry), content_type


__all__ = [
    "CALL_DISPOSITIONS",
    "MetricsSource",
    "SbcCollector",
    "build_registry",
    "cumulative_buckets",
    "render_metrics",
]
