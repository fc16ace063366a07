"""``admission.yaml``: how many calls the SBC carries at once, and how fast new ones come.

Limits apply to *scopes*, plain strings: ``"global"``, ``"interface:<name>"``
and ``"trunk:<name>"`` (per-trunk limits live in ``trunks.yaml``; merge them
with :func:`with_scopes`). A call is admitted only if every scope it belongs
to has room (:class:`sbc.guard.admission.Admission`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Annotated

from pydantic import Field, Strict

from sbc.policy.refs import Reference
from sbc.policy.schema import Name, _Strict

GLOBAL_SCOPE = "global"


def interface_scope(name: str) -> str:
    return f"interface:{name}"


def trunk_scope(name: str) -> str:
    return f"trunk:{name}"


def call_scopes(interface: str, trunk: str | None = None) -> tuple[str, ...]:
    """The scopes of a call arriving on ``interface`` (from ``trunk``, if any)."""
    scopes = (GLOBAL_SCOPE, interface_scope(interface))
    return scopes if trunk is None else (*scopes, trunk_scope(trunk))


# --- schema -----------------------------------------------------------------

Calls = Annotated[int, Strict(), Field(ge=0)]
CallRate = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class ScopeLimitSpec(_Strict):
    """Concurrent calls and new calls per second; 0 or null = unlimited."""

    max_calls: Calls | None = None
    max_cps: CallRate | None = None


class RejectionSpec(_Strict):
    """The answer to a call over a limit."""

    status: Annotated[int, Strict(), Field(ge=400, le=699)] = 503
    retry_after_s: Annotated[int, Strict(), Field(ge=1)] | None = 5


class AdmissionFile(_Strict):
    """``admission.yaml``; an empty file is valid (no limits, 503 + Retry-After: 5)."""

    global_: ScopeLimitSpec = Field(default=ScopeLimitSpec(), alias="global")
    interfaces: dict[Name, ScopeLimitSpec] = {}
    rejection: RejectionSpec = RejectionSpec()


# --- compiled form ----------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One scope's limits; 0 = unlimited."""

    max_calls: int = 0
    max_cps: float = 0.0

    @property
    def unlimited(self) -> bool:
        return not self.max_calls and not self.max_cps


@dataclass(frozen=True)
class AdmissionPolicy:
    """Limits by scope (scopes without an entry are unlimited) and the rejection to send."""

    limits: Mapping[str, Limit] = field(default_factory=lambda: MappingProxyType({}))
    status: int = 503
    retry_after_s: int | None = 5


def compile_admission(file: AdmissionFile) -> AdmissionPolicy:
    limits = {GLOBAL_SCOPE: _limit(file.global_)}
    limits.update({interface_scope(n): _limit(spec) for n, spec in file.interfaces.items()})
    return AdmissionPolicy(
        limits=MappingProxyType({scope: lim for scope, lim in limits.items() if not lim.unlimited}),
        status=file.rejection.status,
        retry_after_s=file.rejection.retry_after_s,
    )


def with_scopes(policy: AdmissionPolicy, extra: Mapping[str, Limit]) -> AdmissionPolicy:
    """``policy`` plus (or overridden by) ``extra``, e.g. ``{"trunk:carrier": Limit(100, 10)}``."""
    merged = {**policy.limits, **extra}
    limits = {scope: limit for scope, limit in merged.items() if not limit.unlimited}
    return replace(policy, limits=MappingProxyType(limits))


def admission_references(file: AdmissionFile) -> list[Reference]:
    """Interfaces named under ``interfaces``."""
    return [Reference(("interfaces", name), "interface", name) for name in file.interfaces]


def _limit(spec: ScopeLimitSpec) -> Limit:
    return Limit(spec.max_calls or 0, float(spec.max_cps or 0))
