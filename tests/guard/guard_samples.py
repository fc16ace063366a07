"""Policies for the guard tests, written as the YAML data an operator would write."""

from __future__ import annotations

from typing import Any

from sbc.guard.guard import Guard
from sbc.policy.admission import AdmissionFile, AdmissionPolicy, compile_admission
from sbc.policy.security import SecurityFile, SecurityPolicy, compile_security

STRANGER = "203.0.113.7"
CARRIER_IP = "198.51.100.10"


def security(data: dict[str, Any] | None = None) -> SecurityPolicy:
    """Validate ``data`` as security.yaml and compile it."""
    return compile_security(SecurityFile.model_validate(data or {}))


def admission(data: dict[str, Any] | None = None) -> AdmissionPolicy:
    return compile_admission(AdmissionFile.model_validate(data or {}))


def guard(data: dict[str, Any] | None = None) -> Guard:
    return Guard(security(data))


def limit(rate: float, burst: int) -> dict[str, float]:
    return {"rate": rate, "burst": burst}


def only_invites(rate: float, burst: int, **bans: Any) -> dict[str, Any]:
    """A policy limiting per-source INVITEs only (other classes off)."""
    per_source = {"INVITE": limit(rate, burst), "REGISTER": None, "OPTIONS": None, "other": None}
    return {"rate_limits": {"per_source": per_source}, "bans": bans}
