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

    # dropped_banned, acl_denied, scanners

    def active_bans(self) -> int: ...

    def admission_rejections(self) -> Mapping[str, int]: ...  # scope -> count

    def media_totals(self) -> Mapping[str, float]: ...  # packets, octets, lost (cumulative)

    def loop_lag_seconds(self) -> float: ...

    def reloads(self) -> tuple[int, int]: ...  # (applied, refused) since start

    def trunk_up(self) -> Mapping[str, bool]: ...

    def cdr_stats(self) -> Mapping[str, int]: ...  # written, dropped, failed

    def transcoding(self) -> Mapping[str, int]: ...  # in_use, capacity, refused (since start)

    def topology_leaks(self) -> Mapping[tuple[str, str], int]: ...  # (header, action) -> messages


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

CDR_RESULTS = ("written", "dropped", "failed")
CALL_DISPOSITIONS = tuple(d.value for d in Disposition)


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
            self._admission,
            self._media,
            self._transcoding,
            self._leaks,
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
        return [
            CounterMetricFamily(name, text, value=totals.get(key, 0.0), unit=unit)
            for key, name, text, unit in MEDIA_COUNTERS
        ]

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
