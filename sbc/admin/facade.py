"""The running SBC as the admin plane sees it: AdminContext and MetricsSource.

Reads the live objects of one :class:`sbc.app.Runtime` (the core and its
calls, guard, admission, liveness, the policy watcher, the CDR writer) in
the same event loop, so every answer is the current state and nothing is
copied between processes. Writing a policy goes through the same validation
and reload as an edit on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sbc.admin.context import (
    CallView,
    LegView,
    Readiness,
    RegistrationView,
    ReloadStatus,
    Resolution,
    TrunkView,
)
from sbc.b2bua.call import Call
from sbc.b2bua.identity import user_of
from sbc.b2bua.leg import Leg
from sbc.cdr import CdrQuery, CdrRecord
from sbc.guard import Ban
from sbc.media.anchor import MediaAnchor
from sbc.media.stats import REJECTED
from sbc.policy import POLICY_FILES, PolicyError, RouteContext, load_policy
from sbc.policy.admission import GLOBAL_SCOPE, interface_scope, trunk_scope
from sbc.sip.errors import ParseError
from sbc.sip.headers import Headers
from sbc.sip.message import Request
from sbc.sip.uri import parse_uri

if TYPE_CHECKING:
    from sbc.app import Runtime


class RuntimeFacade:
    """Implements :class:`sbc.admin.context.AdminContext` and the metrics source."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # --- time --------------------------------------------------------------------

    def wall(self, loop_time: float) -> float:
        """Engine (event-loop) time as epoch seconds."""
        return time.time() - self.rt.loop.time() + loop_time

    # --- AdminContext: liveness -------------------------------------------------

    def readiness(self) -> Readiness:
        return Readiness(
            listeners=self.rt.listening,
            policy_loaded=True,  # the runtime never runs without a valid policy
            media_workers_alive=self.rt.media_alive(),
        )

    # --- calls -----------------------------------------------------------------

    def calls(self) -> Sequence[CallView]:
        return [self._call_view(call) for call in list(self.rt.core.calls.values())]

    def call(self, call_id: str) -> CallView | None:
        call = self.rt.core.calls.get(call_id)
        return self._call_view(call) if call is not None else None

    def hangup(self, call_id: str) -> bool:
        if call_id not in self.rt.core.calls:
            return False
        self.rt.hangup(call_id)
        return True

    def _call_view(self, call: Call) -> CallView:
        b_invite = call.b_invite or call.b_invite_pending
        stats = self.rt.core.media.stats(call.id)
        return CallView(
            id=call.id,
            state=call.state.name,
            route=call.route,
            started=self.wall(call.started),
            answered=self.wall(call.answered) if call.answered is not None else None,
            a=_leg_view(call.a, call.a_invite.call_id, _safe_user(call.a_invite, "from")),
            b=_leg_view(
                call.b,
                b_invite.call_id if b_invite is not None else "",
                user_of(b_invite.uri) if b_invite is not None else None,
            ),
            codecs=call.codecs,
            media={
                "packets": float(stats.packets),
                "octets": float(stats.octets),
                "lost": float(stats.lost),
                **stats.extra,
            },
        )

    # --- trunks ----------------------------------------------------------------

    def trunks(self) -> Sequence[TrunkView]:
        core = self.rt.core
        active = self.active_calls_by_trunk()
        views = []
        for trunk in core.policy.trunks.values():
            health = core.liveness.trunks.get(trunk.name)
            views.append(
                TrunkView(
                    name=trunk.name,
                    interface=trunk.interface,
                    address=trunk.address,
                    port=trunk.port,
                    transport=trunk.transport,
                    up=core.liveness.is_up(trunk.name),
                    probed=health is not None,
                    last_probe_status=health.last_status if health is not None else None,
                    active_calls=active.get(trunk.name, 0),
                    max_calls=trunk.max_calls,
                    max_cps=trunk.max_cps,
                )
            )
        return views

    # --- policies --------------------------------------------------------------

    def policy_files(self) -> Sequence[str]:
        return [name for name in POLICY_FILES if (self.rt.directory / name).is_file()]

    def read_policy(self, name: str) -> str | None:
        if name not in POLICY_FILES:
            return None
        path = self.rt.directory / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def validate_policy(self, name: str, text: str) -> Sequence[str]:
        if name not in POLICY_FILES:
            return [f"{name}:0: not a policy file (known: {', '.join(POLICY_FILES)})"]
        with tempfile.TemporaryDirectory(prefix="sbc-validate-") as scratch:
            trial = Path(scratch)
            for other in POLICY_FILES:
                source = self.rt.directory / other
                if other != name and source.is_file():
                    (trial / other).write_bytes(source.read_bytes())
            (trial / name).write_text(text, encoding="utf-8")
            try:
                load_policy(trial)
            except PolicyError as exc:
                return [str(issue) for issue in exc.issues]
        return []

    async def write_policy(self, name: str, text: str) -> ReloadStatus:
        issues = await asyncio.to_thread(self.validate_policy, name, text)
        if issues:
            return ReloadStatus(None, False, tuple(issues), *self._reload_counts())
        await asyncio.to_thread(_write_atomically, self.rt.directory / name, text)
        await self.rt.watcher.reload()
        return self.reload_status()

    def reload_status(self) -> ReloadStatus:
        last = self.rt.watcher.last
        if last is None:
            return ReloadStatus(None, True, (), *self._reload_counts())
        return ReloadStatus(last.at, last.applied, last.issues, *self._reload_counts())

    def _reload_counts(self) -> tuple[int, int]:
        counters = self.rt.watcher.counters
        return counters.applied, counters.refused

    def resolve(
        self,
        *,
        method: str,
        source: str,
        interface: str,
        request_uri: str,
        from_uri: str,
        headers: Mapping[str, str],
    ) -> Resolution:
        return _resolve(
            self,
            method=method,
            source=source,
            interface=interface,
            request_uri=request_uri,
            from_uri=from_uri,
            headers=headers,
        )

    def registrations(self) -> Sequence[RegistrationView]:
        core, now = self.rt.core, self.rt.loop.time()
        views = [
            RegistrationView(
                kind="trunk",
                name=status.trunk,
                state=str(status.state),
                contact=status.contact,
                source=None,
                expires_in=status.expires_in,
                last_status=status.last_status,
                last_error=status.last_error,
            )
            for status in core.registrations.statuses(now)
        ]
        for binding in core.registrar.relay.bindings.values():
            left = binding.expires_at - now
            source = binding.source
            views.append(
                RegistrationView(
                    kind="relayed",
                    name=binding.aor_user,
                    state="registered" if left > 0 else "expired",
                    contact=binding.contact,
                    source=f"{source.transport}:{source.host}:{source.port}",
                    expires_in=max(0.0, left),
                    last_status=None,
                    last_error=None,
                )
            )
        return views

    # --- security --------------------------------------------------------------

    def bans(self) -> Sequence[Ban]:
        return self.rt.core.guard.bans(self.rt.loop.time())

    def unban(self, source: str) -> bool:
        return self.rt.core.guard.unban(source)

    # --- CDRs ------------------------------------------------------------------

    async def cdrs(self, query: CdrQuery) -> Sequence[CdrRecord]:
        writer = self.rt.cdr
        return [] if writer is None else await writer.query(query)

    async def cdr_count(self, query: CdrQuery) -> int:
        writer = self.rt.cdr
        return 0 if writer is None else await writer.count(query)

    # --- MetricsSource -----------------------------------------------------------

    def core_stats(self) -> Mapping[str, int]:
        return dict(self.rt.core.stats)

    def active_calls_by_trunk(self) -> Mapping[str, int]:
        active: Counter[str] = Counter()
        for call in list(self.rt.core.calls.values()):
            names = {leg.trunk.name for leg in (call.a, call.b) if leg.trunk is not None}
            active.update(names)
        return active

    def call_attempts_by_trunk(self) -> Mapping[tuple[str, str], int]:
        return dict(self.rt.core.counters.attempts)

    def final_responses(self) -> Mapping[tuple[str, int], int]:
        return dict(self.rt.core.counters.finals)

    def completions(self) -> Mapping[str, int]:
        return dict(self.rt.core.counters.completions)

    def setup_time(self) -> tuple[Sequence[float], Sequence[int], float]:
        histogram = self.rt.core.counters.setup_time
        return histogram.bounds, list(histogram.counts), histogram.total

    def guard_stats(self) -> Mapping[str, int]:
        return dict(self.rt.core.guard.stats)

    def topology_leaks(self) -> Mapping[tuple[str, str], int]:
        return dict(self.rt.core.leaks.counts)

    def active_bans(self) -> int:
        return len(self.bans())

    def trunk_auth(self) -> Mapping[str, tuple[int, int]]:
        guard = self.rt.core.guard
        alerts = guard.auth_alerts
        return {trunk: (n, alerts.get(trunk, 0)) for trunk, n in guard.auth_failures.items()}

    def admission_rejections(self) -> Mapping[str, int]:
        return dict(self.rt.core.admission.rejected_by_scope)

    def media_totals(self) -> Mapping[str, float]:
        totals = dict(self.rt.media_totals)
        for call in list(self.rt.core.calls.values()):
            stats = self.rt.core.media.stats(call.id)
            totals["packets"] += stats.packets
            totals["octets"] += stats.octets
            totals["lost"] += stats.lost
            for reason in REJECTED:
                totals[reason] = totals.get(reason, 0.0) + stats.extra.get(reason, 0.0)
        return totals

    def loop_lag_seconds(self) -> float:
        return self.rt.loop_lag()

    def reloads(self) -> tuple[int, int]:
        return self._reload_counts()

    def trunk_up(self) -> Mapping[str, bool]:
        liveness = self.rt.core.liveness
        return {name: liveness.is_up(name) for name in self.rt.core.policy.trunks}

    def transcoding(self) -> Mapping[str, int]:
        media = self.rt.core.media
        if not isinstance(media, MediaAnchor):  # SDP crosses as is: nothing transcodes
            return {"in_use": 0, "capacity": 0, "refused": 0}
        pool = media.transcoding
        return {"in_use": pool.in_use, "capacity": pool.max_sessions, "refused": pool.refused}

    def registration_relay(self) -> Mapping[str, int]:
        registrar = self.rt.core.registrar
        return {
            **registrar.stats,
            "bindings": len(registrar.relay.bindings),
            "pending": len(registrar.pending),
        }

    def transport_stats(self) -> Mapping[str, int]:
        return dataclasses.asdict(self.rt.transport.stats)

    def kernel_filter(self) -> Mapping[str, int]:
        return self.rt.kernel.stats()

    def cdr_stats(self) -> Mapping[str, int]:
        writer = self.rt.cdr
        if writer is None:
            return {"written": 0, "dropped": 0, "failed": 0}
        return {"written": writer.written, "dropped": writer.dropped, "failed": writer.failed}


def _leg_view(leg: Leg, call_id: str, user: str | None) -> LegView:
    dialog = leg.dialog
    peer = leg.observed or leg.peer
    return LegView(
        call_id=call_id,
        local_tag=dialog.local_tag if dialog is not None else None,
        remote_tag=dialog.remote_tag if dialog is not None else None,
        trunk=leg.trunk.name if leg.trunk is not None else None,
        interface=leg.interface.name,
        peer=f"{peer.transport}:{peer.host}:{peer.port}",
        user=user,
    )


def _safe_user(request: Request, which: str) -> str | None:
    try:
        return user_of(request.from_.uri if which == "from" else request.to.uri)
    except ParseError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: readers see old or new, never half."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _resolve(
    facade: RuntimeFacade,
    *,
    method: str,
    source: str,
    interface: str,
    request_uri: str,
    from_uri: str,
    headers: Mapping[str, str],
) -> Resolution:
    """The what-if: screening, trunk, route and limits, without spending a token."""
    core = facade.rt.core
    policy = core.policy
    trunk = policy.trunk_for_source(interface, source)
    verdict = core.guard.check_source(source, interface, facade.rt.loop.time())
    screening = (
        verdict.action
        if verdict.action != "respond"
        else f"respond {verdict.status} {verdict.reason}"
    )
    request = _probe_request(method, request_uri, from_uri, headers)
    if trunk is None or request is None:
        action = "forbidden" if trunk is None else "unparseable request"
        return Resolution(None, screening, None, action, (), (), None, (), (), {})
    view = request.copy()
    policy.manipulations.apply(view, trunk.name, "inbound")
    inbound = tuple(rule.label for rule in policy.manipulations.rules_for(trunk.name, "inbound"))
    ruri_user = user_of(view.uri) or ""
    route = policy.route_for(
        RouteContext(
            trunk=trunk.name,
            interface=interface,
            ruri_user=ruri_user,
            from_user=user_of(view.from_.uri) or "",
            headers=view.headers,
            wall=core.wall_clock(),
        )
    )
    if route is None:
        return Resolution(trunk.name, screening, None, "no route", (), (), None, inbound, (), {})
    if route.reject is not None:
        status, reason = route.reject
        action = f"reject {status} {reason or ''}".strip()
        return Resolution(trunk.name, screening, route.name, action, (), (), None, inbound, (), {})
    names = tuple(name for name in route.trunks(core.rng) if name in policy.trunks)
    down = tuple(name for name in names if not core.liveness.is_up(name))
    translated = route.translate.apply(ruri_user) if route.translate is not None else None
    first = next((name for name in names if name not in down), None)
    outbound = (
        tuple(rule.label for rule in policy.manipulations.rules_for(first, "outbound"))
        if first is not None
        else ()
    )
    scopes = [GLOBAL_SCOPE, interface_scope(interface), trunk_scope(trunk.name)]
    scopes += [trunk_scope(name) for name in names]
    limits = {}
    for scope in scopes:
        limit = policy.admission.limits.get(scope)
        if limit is not None:
            active = core.admission.active(scope)
            limits[scope] = f"{active}/{limit.max_calls or 'unlimited'} calls, {limit.max_cps} cps"
    return Resolution(
        trunk.name,
        screening,
        route.name,
        "route",
        names,
        down,
        translated,
        inbound,
        outbound,
        limits,
    )


def _probe_request(
    method: str, request_uri: str, from_uri: str, headers: Mapping[str, str]
) -> Request | None:
    """A request with just what routing reads, built from the operator's input."""
    try:
        uri = parse_uri(request_uri)
        parse_uri(from_uri.strip("<>"))
    except ParseError:
        return None
    lines = Headers([(name, value) for name, value in headers.items()])
    lines.set("From", f"<{from_uri.strip('<>')}>;tag=resolve")
    lines.set("To", f"<{request_uri}>")
    lines.set("Call-ID", "resolve")
    lines.set("CSeq", f"1 {method}")
    return Request(method, uri, lines)
