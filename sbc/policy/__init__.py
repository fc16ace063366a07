"""Policies: the operator's files under ``policies/``, validated and compiled.

Import from here; the submodules are an implementation detail.
"""

from sbc.policy.compiled import Interface, Policy, Trunk
from sbc.policy.issues import PolicyError, PolicyIssue
from sbc.policy.loader import POLICY_FILES, load_policy
from sbc.policy.routing import Route, RouteContext
from sbc.policy.schema import (
    CallSettings,
    LoggingSettings,
    MediaSettings,
    Settings,
    SipSettings,
    TransportSettings,
)

__all__ = [
    "POLICY_FILES",
    "CallSettings",
    "Interface",
    "LoggingSettings",
    "MediaSettings",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "Route",
    "RouteContext",
    "Settings",
    "SipSettings",
    "TransportSettings",
    "Trunk",
    "load_policy",
]
