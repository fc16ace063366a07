"""The deployment files in ops/: they parse, and they only speak of what sbc exports.

The Grafana dashboard is checked against the metrics module itself: every
PromQL ``expr`` may name only series a real scrape contains, and every
``sbc_`` family has a panel, so renaming a metric breaks this test instead
of silently blanking a panel.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sbc.admin.metrics import build_registry, render_metrics

OPS = Path(__file__).resolve().parent.parent / "ops"


class PopulatedSource:
    """Every method returns data, so every labelled family has samples."""

    def core_stats(self) -> Mapping[str, int]:
        return {"received": 1, "calls_started": 1}

    def active_calls_by_trunk(self) -> Mapping[str, int]:
        return {"carrier": 1}

    def call_attempts_by_trunk(self) -> Mapping[tuple[str, str], int]:
        return {("carrier", "in"): 1}

    def final_responses(self) -> Mapping[tuple[str, int], int]:
        return {("pbx", 200): 1}

    def completions(self) -> Mapping[str, int]:
        return {"answered": 1}

    def setup_time(self) -> tuple[Sequence[float], Sequence[int], float]:
        return (0.5,), (1, 0), 0.2

    def guard_stats(self) -> Mapping[str, int]:
        return {}

    def active_bans(self) -> int:
        return 0

    def trunk_auth(self) -> Mapping[str, tuple[int, int]]:
        return {"pbx": (1, 1)}

    def admission_rejections(self) -> Mapping[str, int]:
        return {"global": 1}

    def media_totals(self) -> Mapping[str, float]:
        return {"packets": 1.0, "octets": 172.0, "lost": 0.0}

    def loop_lag_seconds(self) -> float:
        return 0.0

    def reloads(self) -> tuple[int, int]:
        return 1, 0

    def trunk_up(self) -> Mapping[str, bool]:
        return {"carrier": True}

    def cdr_stats(self) -> Mapping[str, int]:
        return {"written": 1}

    def transcoding(self) -> Mapping[str, int]:
        return {"in_use": 1, "capacity": 100, "refused": 1}

    def transport_stats(self) -> Mapping[str, int]:
        return {"connections": 1, "refused_per_source": 1}

    def topology_leaks(self) -> Mapping[tuple[str, str], int]:
        return {("X-Origin", "scrubbed"): 1}

    def kernel_filter(self) -> Mapping[str, int]:
        return {"installed": 1, "bans": 1, "banned": 1}


def exported() -> tuple[set[str], set[str]]:
    """(sample names a scrape contains, sbc_ family names)."""
    body, _ = render_metrics(build_registry(PopulatedSource()))
    families = list(text_string_to_metric_families(body.decode()))
    samples = {s.name for family in families for s in family.samples}
    return samples, {f.name for f in families if f.name.startswith("sbc_")}


# --- PromQL: the metric names an expression reads -------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
#: PromQL words that look like identifiers: binary operators and modifiers.
_OPERATORS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_MODIFIERS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = _OPERATORS | _MODIFIERS


def metric_names(expr: str) -> set[str]:
    """Identifiers that are metric names: not functions, keywords, labels or numbers."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end() :].lstrip()
        if after.startswith("(") or before.isdigit() or before == ".":
            continue  # a function or aggregation; or the exponent of a number (1e3)
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def test_metric_names_of_promql() -> None:
    assert metric_names(
        'sum by (trunk, code) (rate(sbc_final_responses_total{instance=~"$i", code="200"}'
        "[$__rate_interval])) / ignoring (code) group_left sum(sbc_x) * 8 > bool 1e3"
    ) == {"sbc_final_responses_total", "sbc_x"}
    assert metric_names('count(sbc_trunk_up{a="}"} == 0) or vector(0)') == {"sbc_trunk_up"}


# --- the Grafana dashboard ---------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((OPS / "grafana-dashboard.json").read_text())
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # collapsed rows hold their panels


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_dashboard_reads_only_exported_metrics() -> None:
    samples, _ = exported()
    exprs = expressions(load_dashboard())
    assert exprs
    unknown = {name: expr for expr in exprs for name in metric_names(expr) - samples}
    assert unknown == {}


def test_dashboard_has_a_panel_for_every_sbc_family() -> None:
    samples, families = exported()
    read = set().union(*(metric_names(e) for e in expressions(load_dashboard())))
    missing = {
        family
        for family in families
        if not any(s in read for s in samples if s == family or s.startswith(family + "_"))
    }
    assert missing == set()


def test_dashboard_datasource_is_templated() -> None:
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    node_query = re.fullmatch(
        r"label_values\((\w+), instance\)", variables["instance"]["definition"]
    )
    assert node_query is not None
    assert node_query.group(1) in exported()[0]
    for panel in all_panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = list(all_panels(load_dashboard()["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


# --- Prometheus, systemd, Docker -----------------------------------------------------


def test_prometheus_config_scrapes_metrics_with_a_bearer_token_file() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "sbc"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"]
    assert "credentials" not in job["authorization"]  # never the token itself
    assert job["static_configs"][0]["targets"]


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # systemd keys keep their case
    parser.read_string((OPS / "sbc.service").read_text())
    return parser


def test_systemd_unit_runs_unprivileged_with_only_the_ports_and_filter_capabilities(
    unit: configparser.ConfigParser,
) -> None:
    service = unit["Service"]
    assert service["User"] == "sbc"
    # Low ports, and the kernel filter's nftables table (kernel_filter in security.yaml).
    capabilities = {"CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN"}
    assert set(service["AmbientCapabilities"].split()) == capabilities
    assert set(service["CapabilityBoundingSet"].split()) == capabilities
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert set(service["RestrictAddressFamilies"].split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
        "AF_NETLINK",  # nftables
    }
    assert set(service["ReadWritePaths"].split()) == {"/var/lib/sbc", "/etc/sbc/policies"}
    assert service["EnvironmentFile"] == "-/etc/sbc/env"
    assert int(service["LimitNOFILE"]) >= 65536


def test_systemd_unit_drains_within_its_stop_timeout(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # the media workers live until the main process ends
    default_grace = yaml.safe_load((OPS.parent / "policies" / "sbc.yaml").read_text())["calls"][
        "shutdown_grace_s"
    ]
    assert int(service["TimeoutStopSec"]) > default_grace + 2  # + the final BYEs' wait
    assert service["Restart"] == "on-failure"
    assert "--policies" in service["ExecStart"]


def test_dockerfile_runs_non_root_with_a_healthcheck() -> None:
    lines = [
        line.strip()
        for line in (OPS / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2  # build stage, runtime stage
    assert any("python:3.11-slim" in line for line in lines if line.startswith("ARG "))
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    text = "\n".join(lines)
    assert "/health" in text
    assert "5060/udp" in text
    assert "5060/tcp" in text
    assert '"--policies", "/etc/sbc/policies"' in text
