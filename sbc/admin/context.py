"""What the admin plane may see and do: a narrow facade over the running SBC.

The REST API (:mod:`sbc.admin.api`) depends only on :class:`AdminContext`;
the runtime (:class:`sbc.app.Runtime`) implements it over the live objects
(core, guard, admission, policy watcher, CDR writer), in the same process
and event loop — no IPC and no second copy of state. Tests implement it
with plain fakes. Views are frozen snapshots, safe to serialize.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sbc.cdr import CdrQuery, CdrRecord
from sbc.guard import Ban


@dataclass(frozen=True)
class LegView:
    """One leg of a call: its dialog identifiers and where it goes."""

    call_id: str
    local_tag: str | None
    remote_tag: str | None
    trunk: str | None
    interface: str
    peer: str  # transport:host:port the leg talks to
    user: str | None  # Request-URI user (B-leg) or From user (A-leg) as on that leg


@dataclass(frozen=True)
class CallView:
    id: str
    state: str  # CALLING, EARLY, CANCELLING, CONFIRMED, TERMINATING
    route: str
    started: float  # epoch seconds
    answered: float | None
    a: LegView
    b: LegView
    codecs: tuple[str, ...] = ()
    media: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrunkView:
    name: str
    interface: str
    address: str
    port: int
    transport: str
    up: bool
    probed: bool  # options_interval_s set
    last_probe_status: int | None
    active_calls: int
    max_calls: int  # 0 = unlimited
    max_cps: float


@dataclass(frozen=True)
class RegistrationView:
    """A registration: the SBC's own with a trunk (``kind="trunk"``) or a phone's
    relayed through it (``kind="relayed"``)."""

    kind: str
    name: str  # trunk name, or the phone's AOR user
    state: str  # registering, registered, retrying, failed, unregistered
    contact: str  # our Contact (trunk) or the phone's Contact (relayed)
    source: str | None  # relayed: transport:host:port the phone registers from
    expires_in: float | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class Readiness:
    listeners: bool
    policy_loaded: bool
    media_workers_alive: bool  # True when media runs in-process or not anchored

    @property
    def ready(self) -> bool:
        return self.listeners and self.policy_loaded and self.media_workers_alive


@dataclass(frozen=True)
class ReloadStatus:
    at: float | None  # epoch seconds of the last attempt; None before any
    applied: bool
    issues: tuple[str, ...]  # file:line: message
    applied_count: int
    refused_count: int


@dataclass(frozen=True)
class Resolution:
    """What a new call with these properties would meet (no call is placed)."""

    trunk: str | None  # the ingress trunk the source belongs to (None: 403)
    screening: str  # "allow", "drop" or "respond <status> <reason>"
    route: str | None
    action: str  # "route", "reject <status> <reason>", "forbidden", "no route"
    trunks: tuple[str, ...]  # in the order they would be tried (groups in weight order)
    trunks_down: tuple[str, ...]
    translated_user: str | None
    inbound_rules: tuple[str, ...]  # manipulation rule labels for the ingress trunk
    outbound_rules: tuple[str, ...]  # ... for the first egress trunk
    limits: Mapping[str, str]  # scope -> "active/max_calls, max_cps"


class AdminContext(Protocol):
    # --- liveness -------------------------------------------------------------
    def readiness(self) -> Readiness: ...

    # --- calls ----------------------------------------------------------------
    def calls(self) -> Sequence[CallView]: ...

    def call(self, call_id: str) -> CallView | None: ...

    def hangup(self, call_id: str) -> bool:
        """BYE or CANCEL on both legs as the call's state requires; False if unknown."""
        ...

    # --- trunks ---------------------------------------------------------------
    def trunks(self) -> Sequence[TrunkView]: ...

    # --- policies -------------------------------------------------------------
    def policy_files(self) -> Sequence[str]:
        """The policy files present in the directory (known names only)."""
        ...

    def read_policy(self, name: str) -> str | None: ...

    def validate_policy(self, name: str, text: str) -> Sequence[str]:
        """Issues (``file:line: message``) if ``text`` replaced ``name``; [] = valid."""
        ...

    async def write_policy(self, name: str, text: str) -> ReloadStatus:
        """Validate, write atomically, reload; the file on disk stays the truth."""
        ...

    def reload_status(self) -> ReloadStatus: ...

    def resolve(
        self,
        *,
        method: str,
        source: str,
        interface: str,
        request_uri: str,
        from_uri: str,
        headers: Mapping[str, str],
    ) -> Resolution: ...

    def registrations(self) -> Sequence[RegistrationView]: ...

    # --- security -------------------------------------------------------------
    def bans(self) -> Sequence[Ban]: ...

    def unban(self, source: str) -> bool: ...

    # --- CDRs -----------------------------------------------------------------
    async def cdrs(self, query: CdrQuery) -> Sequence[CdrRecord]: ...

    async def cdr_count(self, query: CdrQuery) -> int: ...
