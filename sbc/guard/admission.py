"""Admission control: concurrent-call and call-rate limits per scope.

A new call names its scopes (``"global"``, ``"interface:external"``,
``"trunk:carrier"``; see :func:`sbc.policy.admission.call_scopes`).
:meth:`Admission.admit` checks every scope's concurrent count and call-rate
bucket and admits all-or-nothing: a refused call changes no count and spends
no token, so one full trunk cannot eat the global rate budget. Each admitted
call must later be :meth:`~Admission.release`\\ d with the same scopes.

Counts are kept for every scope named, limited or not, so a limit added by a
hot reload applies to the calls already up. Pure: time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from sbc.guard.tokens import TokenBucket
from sbc.policy.admission import AdmissionPolicy, Limit

#: RFC 3261 §20.33: the responses Retry-After is defined for.
RETRY_AFTER_STATUSES = frozenset({404, 413, 480, 486, 500, 503, 600, 603})

_CALLS_REASON = {
    "global": "Call Limit Reached",
    "interface": "Interface Limit Reached",
    "trunk": "Trunk Limit Reached",
}
_RATE_REASON = "Call Rate Limit"


@dataclass(frozen=True)
class Rejection:
    """Why a call was refused, ready to answer: status, reason phrase, headers."""

    status: int
    reason: str
    scope: str
    limit: Literal["calls", "cps"]
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)


def _cps_bucket(limit: Limit) -> TokenBucket:
    """At most ``max_cps`` per second, with up to one second's worth at once."""
    return TokenBucket(limit.max_cps, max(1, math.ceil(limit.max_cps)))


class Admission:
    """Counts calls per scope and refuses those over a limit."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self._policy = policy
        self._active: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self.stats: dict[str, int] = {"admitted": 0, "rejected": 0, "released": 0}
        #: rejections counted by the scope that refused, e.g. {"trunk:carrier": 3}
        self.rejected_by_scope: dict[str, int] = {}

    @property
    def policy(self) -> AdmissionPolicy:
        return self._policy

    def set_policy(self, policy: AdmissionPolicy) -> None:
        """Hot reload: counts stay; a rate bucket stays while its ``max_cps`` is unchanged."""
        for scope, bucket in list(self._buckets.items()):
            limit = policy.limits.get(scope)
            if limit is None or limit.max_cps != bucket.rate:
                del self._buckets[scope]
        self._policy = policy

    def admit(self, scopes: Sequence[str], now: float) -> Rejection | None:
        """Count a new call in every scope, or refuse it (changing nothing)."""
        distinct = tuple(dict.fromkeys(scopes))
        limits = self._policy.limits
        rated: list[TokenBucket] = []
        for scope in distinct:
            limit = limits.get(scope)
            if limit is None:
                continue
            if limit.max_calls and self._active.get(scope, 0) >= limit.max_calls:
                return self._reject(scope, "calls")
            if limit.max_cps:
                bucket = self._buckets.get(scope)
                if bucket is None:
                    bucket = self._buckets[scope] = _cps_bucket(limit)
                if not bucket.ready(now):
                    return self._reject(scope, "cps")
                rated.append(bucket)
        for bucket in rated:
            bucket.take(now)
        active = self._active
        for scope in distinct:
            active[scope] = active.get(scope, 0) + 1
        self.stats["admitted"] += 1
        return None

    def release(self, scopes: Iterable[str]) -> None:
        """An admitted call ended; extra releases are ignored (counts never go negative)."""
        active = self._active
        for scope in dict.fromkeys(scopes):
            count = active.get(scope, 0)
            if count > 1:
                active[scope] = count - 1
            elif count == 1:
                del active[scope]  # forget idle scopes: trunks come and go with reloads
        self.stats["released"] += 1

    def active(self, scope: str) -> int:
        """Calls currently counted in ``scope``."""
        return self._active.get(scope, 0)

    def scopes(self) -> dict[str, int]:
        """Every scope with calls up, and how many."""
        return dict(self._active)

    def _reject(self, scope: str, limit: Literal["calls", "cps"]) -> Rejection:
        self.stats["rejected"] += 1
        self.rejected_by_scope[scope] = self.rejected_by_scope.get(scope, 0) + 1
        policy = self._policy
        if limit == "cps":
            reason = _RATE_REASON
        else:
            reason = _CALLS_REASON.get(scope.split(":", 1)[0], "Call Limit Reached")
        retry = policy.retry_after_s
        headers: dict[str, str] = {}
        if retry is not None and policy.status in RETRY_AFTER_STATUSES:
            headers["Retry-After"] = str(retry)
        return Rejection(policy.status, reason, scope, limit, MappingProxyType(headers))
