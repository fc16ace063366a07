"""The admin API's wire types: what the REST plane accepts and answers.

Each response model mirrors one view of :mod:`sbc.admin.context` (or a CDR
or a ban) and is built by its ``of`` classmethod, so the API never exposes
an internal object and never a secret (trunk credentials are not in the
views to begin with). Times are epoch seconds, as in the views. Request
models forbid unknown fields: a typo is a 422, not a silent default.
Errors are :class:`Problem` documents (RFC 9457).
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, field_validator

from sbc.admin.context import (
    CallView,
    LegView,
    Readiness,
    RegistrationView,
    ReloadStatus,
    Resolution,
    TrunkView,
)
from sbc.cdr import CdrRecord, Disposition, HangupBy, MediaFigures
from sbc.guard import Ban

#: The largest policy file the API accepts (a real one is a few kilobytes).
MAX_POLICY_BYTES = 1024 * 1024

SIP_TOKEN = r"^[A-Za-z0-9.!%*_+`'~-]+$"  # RFC 3261 §25.1 token (methods, header names)
SIP_URI = r"^(?i:sips?|tel):\S+$"  # RFC 3261 §19.1, RFC 3966


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- errors ---------------------------------------------------------------------------


class Problem(_Response):
    """An error, as ``application/problem+json`` (RFC 9457 §3).

    ``issues`` (an extension member, §3.2) lists every finding when there are
    several: policy errors as ``file:line: message``, request fields as
    ``location: message``.
    """

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    issues: list[str] | None = None


# --- liveness -------------------------------------------------------------------------


class Health(_Response):
    status: str = "ok"


class ReadinessReport(_Response):
    """Whether the SBC can take calls, and which part is missing if not."""

    ready: bool
    listeners: bool
    policy_loaded: bool
    media_workers_alive: bool

    @classmethod
    def of(cls, view: Readiness) -> Self:
        return cls(
            ready=view.ready,
            listeners=view.listeners,
            policy_loaded=view.policy_loaded,
            media_workers_alive=view.media_workers_alive,
        )


# --- calls ----------------------------------------------------------------------------


class CallState(StrEnum):
    """The states a call is listed in (see ``sbc.b2bua.call``)."""

    CALLING = "CALLING"
    EARLY = "EARLY"
    CANCELLING = "CANCELLING"
    CONFIRMED = "CONFIRMED"
    TERMINATING = "TERMINATING"


class Leg(_Response):
    """One leg's dialog (RFC 3261 §12: Call-ID and tags) and its peer."""

    call_id: str
    local_tag: str | None
    remote_tag: str | None
    trunk: str | None
    interface: str
    peer: str = Field(description="transport:host:port the leg talks to")
    user: str | None = Field(description="From user (A-leg) or Request-URI user (B-leg)")

    @classmethod
    def of(cls, view: LegView) -> Self:
        return cls(
            call_id=view.call_id,
            local_tag=view.local_tag,
            remote_tag=view.remote_tag,
            trunk=view.trunk,
            interface=view.interface,
            peer=view.peer,
            user=view.user,
        )


class Call(_Response):
    id: str
    state: str = Field(description="CALLING, EARLY, CANCELLING, CONFIRMED or TERMINATING")
    route: str
    started: float = Field(description="epoch seconds")
    answered: float | None = Field(description="epoch seconds; null until answered")
    a: Leg
    b: Leg
    codecs: list[str]
    media: dict[str, float]

    @classmethod
    def of(cls, view: CallView) -> Self:
        return cls(
            id=view.id,
            state=view.state,
            route=view.route,
            started=view.started,
            answered=view.answered,
            a=Leg.of(view.a),
            b=Leg.of(view.b),
            codecs=list(view.codecs),
            media=dict(view.media),
        )


class CallPage(_Response):
    items: list[Call]
    total: int = Field(description="calls matching the filters, all pages")
    limit: int
    offset: int


class HangupAccepted(_Response):
    """The hang-up has begun: BYE or CANCEL is on its way on both legs."""

    id: str
    state: str = "hanging up"


# --- trunks ---------------------------------------------------------------------------


class Trunk(_Response):
    name: str
    interface: str
    address: str
    port: int
    transport: str
    up: bool
    probed: bool = Field(description="OPTIONS probing is configured")
    last_probe_status: int | None
    active_calls: int
    max_calls: int = Field(description="0 = unlimited")
    max_cps: float
    load: float | None = Field(description="active_calls / max_calls; null when unlimited")

    @classmethod
    def of(cls, view: TrunkView) -> Self:
        return cls(
            name=view.name,
            interface=view.interface,
            address=view.address,
            port=view.port,
            transport=view.transport,
            up=view.up,
            probed=view.probed,
            last_probe_status=view.last_probe_status,
            active_calls=view.active_calls,
            max_calls=view.max_calls,
            max_cps=view.max_cps,
            load=view.active_calls / view.max_calls if view.max_calls > 0 else None,
        )


# --- policies -------------------------------------------------------------------------


class ReloadReport(_Response):
    """The outcome of the last reload, and how many were applied or refused."""

    at: float | None = Field(description="epoch seconds of the last attempt")
    applied: bool
    issues: list[str] = Field(description="file:line: message")
    applied_count: int
    refused_count: int

    @classmethod
    def of(cls, view: ReloadStatus) -> Self:
        return cls(
            at=view.at,
            applied=view.applied,
            issues=list(view.issues),
            applied_count=view.applied_count,
            refused_count=view.refused_count,
        )


class PolicyIndex(_Response):
    files: list[str]
    last_reload: ReloadReport


class PolicyFile(_Response):
    name: str
    content: str


class PolicyDraft(_Request):
    """A proposed file, checked against the other files as they are on disk."""

    file: str = Field(min_length=1, max_length=255)
    content: str = Field(max_length=MAX_POLICY_BYTES)


class ValidationReport(_Response):
    valid: bool
    issues: list[str] = Field(description="file:line: message")


# --- route resolution -----------------------------------------------------------------


class RouteQuery(_Request):
    """A call that is not placed: what would the policy do with it?"""

    method: Annotated[str, Field(pattern=SIP_TOKEN, max_length=32)] = "INVITE"
    source: IPvAnyAddress = Field(description="the sender's IP address")
    interface: str = Field(min_length=1, max_length=64, description="the receiving interface")
    request_uri: str = Field(pattern=SIP_URI, max_length=2048)
    from_uri: str = Field(pattern=SIP_URI, max_length=2048)
    headers: dict[Annotated[str, Field(pattern=SIP_TOKEN, max_length=64)], str] = Field(
        default_factory=dict, max_length=64
    )

    @field_validator("method")
    @classmethod
    def _upper(cls, method: str) -> str:
        return method.upper()  # methods are case-sensitive (§7.1), but nobody means "invite"


class RouteResolution(_Response):
    trunk: str | None = Field(description="the ingress trunk; null when the source is unknown")
    screening: str = Field(description='"allow", "drop" or "respond <status> <reason>"')
    route: str | None
    action: str = Field(description='"route", "reject <status> <reason>", "forbidden", ...')
    trunks: list[str] = Field(description="egress trunks in the order they would be tried")
    trunks_down: list[str]
    translated_user: str | None
    inbound_rules: list[str]
    outbound_rules: list[str]
    limits: dict[str, str] = Field(description="admission scope -> current use and limits")

    @classmethod
    def of(cls, view: Resolution) -> Self:
        return cls(
            trunk=view.trunk,
            screening=view.screening,
            route=view.route,
            action=view.action,
            trunks=list(view.trunks),
            trunks_down=list(view.trunks_down),
            translated_user=view.translated_user,
            inbound_rules=list(view.inbound_rules),
            outbound_rules=list(view.outbound_rules),
            limits=dict(view.limits),
        )


# --- bans -----------------------------------------------------------------------------


class Registration(_Response):
    kind: str = Field(description="trunk (the SBC's own) or relayed (a phone's, through the SBC)")
    name: str = Field(description="trunk name, or the phone's AOR user")
    state: str
    contact: str
    source: str | None = Field(description="relayed: transport:host:port it registers from")
    expires_in: float | None
    last_status: int | None
    last_error: str | None

    @classmethod
    def of(cls, view: RegistrationView) -> Self:
        return cls(
            kind=view.kind,
            name=view.name,
            state=view.state,
            contact=view.contact,
            source=view.source,
            expires_in=view.expires_in,
            last_status=view.last_status,
            last_error=view.last_error,
        )


class BanEntry(_Response):
    source: str
    reason: str = Field(description="scanner, rate, malformed, auth or manual")
    since: float
    until: float

    @classmethod
    def of(cls, ban: Ban) -> Self:
        return cls(source=ban.source, reason=ban.reason, since=ban.since, until=ban.until)


def canonical_source(text: str) -> str:
    """An IP address in its canonical spelling (``2001:DB8::01`` -> ``2001:db8::1``)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


# --- CDRs -----------------------------------------------------------------------------


class MediaReport(_Response):
    """One direction of a call's media (RFC 3550 §6.4.1 loss and jitter)."""

    packets: int
    octets: int
    lost: int
    jitter_ms: float
    reported_lost: int
    reported_jitter_ms: float

    @classmethod
    def of(cls, figures: MediaFigures) -> Self:
        return cls(
            packets=figures.packets,
            octets=figures.octets,
            lost=figures.lost,
            jitter_ms=figures.jitter_ms,
            reported_lost=figures.reported_lost,
            reported_jitter_ms=figures.reported_jitter_ms,
        )


class Cdr(_Response):
    """One call attempt; ``end`` is null while the call is open."""

    id: str
    a_call_id: str
    b_call_id: str
    a_local_tag: str
    a_remote_tag: str
    b_local_tag: str
    b_remote_tag: str
    ingress_trunk: str
    egress_trunk: str
    ingress_interface: str
    egress_interface: str
    route: str
    calling: str
    called: str
    start: float
    ring: float | None
    answer: float | None
    end: float | None
    duration_s: float
    setup_ms: float | None
    final_status: int | None
    disposition: Disposition | None
    hangup_by: HangupBy | None
    end_reason: str
    codecs: str
    failovers: int
    a_to_b: MediaReport
    b_to_a: MediaReport

    @classmethod
    def of(cls, record: CdrRecord) -> Self:
        return cls(
            id=record.id,
            a_call_id=record.a_call_id,
            b_call_id=record.b_call_id,
            a_local_tag=record.a_local_tag,
            a_remote_tag=record.a_remote_tag,
            b_local_tag=record.b_local_tag,
            b_remote_tag=record.b_remote_tag,
            ingress_trunk=record.ingress_trunk,
            egress_trunk=record.egress_trunk,
            ingress_interface=record.ingress_interface,
            egress_interface=record.egress_interface,
            route=record.route,
            calling=record.calling,
            called=record.called,
            start=record.start,
            ring=record.ring,
            answer=record.answer,
            end=record.end,
            duration_s=record.duration_s,
            setup_ms=record.setup_ms,
            final_status=record.final_status,
            disposition=record.disposition,
            hangup_by=record.hangup_by,
            end_reason=record.end_reason,
            codecs=record.codecs,
            failovers=record.failovers,
            a_to_b=MediaReport.of(record.a_to_b),
            b_to_a=MediaReport.of(record.b_to_a),
        )


class CdrPage(_Response):
    items: list[Cdr]
    total: int = Field(description="records matching the filters, all pages")
    limit: int
    offset: int
    next: str | None = Field(
        description="pass as `after` (without `offset`) for the next page; null on the last"
    )
