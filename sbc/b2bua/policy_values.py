"""The pure values the core derives from a policy, rebuilt on every swap.

Theory of operation. A :class:`~sbc.policy.Policy` is parsed YAML; the
layers below the core want small values of their own: a leg's media needs
(:class:`LegMedia`), the call and transaction timers, a digest verifier or
client per trunk, the registrations trunks ask for. Each function here maps
one policy section to one such value and keeps no state, so a policy swap is
simply "call them again" (:meth:`sbc.b2bua.core.Core.set_policy`).
"""

from __future__ import annotations

from sbc.auth.client import ClientAuth
from sbc.auth.server import DigestServer
from sbc.b2bua.config import CallConfig
from sbc.b2bua.leg import Leg
from sbc.b2bua.registration import Registration, RegistrationSpec
from sbc.media.interface import CodecPolicy, LegMedia
from sbc.policy import Policy
from sbc.policy.schema import TrunkCodecs
from sbc.sip.transaction import TimerConfig


def leg_media(leg: Leg, peer_ip: str, *, latch_any: bool = False) -> LegMedia:
    """What anchoring needs of a leg: where to bind, what to advertise, whom to trust."""
    interface = leg.interface
    public = interface.advertised_address != interface.address  # behind 1:1 NAT
    return LegMedia(
        address=interface.media_address,
        advertised=interface.advertised_address if public else interface.media_address,
        ports=interface.media_ports,
        peer_ip=peer_ip,
        latch_any=latch_any,
        srtp=leg.trunk.srtp if leg.trunk is not None else "off",
        srtp_keying=leg.trunk.srtp_keying if leg.trunk is not None else "sdes",
        codecs=codec_policy(leg.trunk.codecs) if leg.trunk is not None else None,
        dtmf=leg.trunk.dtmf if leg.trunk is not None else "rfc4733",
    )


def codec_policy(spec: TrunkCodecs | None) -> CodecPolicy | None:
    """A trunk's ``codecs:`` block as the media layer's pure value (names lower-cased)."""
    if spec is None:
        return None
    return CodecPolicy(
        allow=None if spec.allow is None else tuple(dict.fromkeys(n.lower() for n in spec.allow)),
        prefer=tuple(dict.fromkeys(n.lower() for n in spec.prefer)),
        strip=frozenset(n.lower() for n in spec.strip),
        transcode=spec.transcode,
        ptime=spec.ptime,
    )


def auth_servers(policy: Policy, key: bytes) -> dict[str, DigestServer]:
    """A digest verifier per trunk that requires authentication of its peers."""
    servers = {}
    for trunk in policy.trunks.values():
        spec = trunk.require_auth
        if spec is not None:
            servers[trunk.name] = DigestServer(
                spec.realm,
                key,
                trunk.auth_users,
                nonce_ttl=float(spec.nonce_ttl_s),
                algorithm=spec.algorithm,
            )
    return servers


def client_auths(policy: Policy) -> dict[str, ClientAuth]:
    """A digest client per trunk with credentials (a reload starts them afresh:
    at worst one more challenge per trunk)."""
    return {
        trunk.name: ClientAuth(trunk.credentials)
        for trunk in policy.trunks.values()
        if trunk.credentials is not None
    }


def call_config(policy: Policy) -> CallConfig:
    """The settings every call reads (user agent, session timers, call limits, T1),
    and the header limits the core parses messages under."""
    sip = policy.settings.sip
    return CallConfig(
        user_agent=sip.user_agent,
        session_expires=sip.session_expires_s,
        min_se=sip.min_se_s,
        max_call_duration=float(policy.settings.calls.max_call_duration_s),
        no_answer_timeout=float(policy.settings.calls.no_answer_timeout_s),
        t1=sip.t1_ms / 1000,
        head_limits=sip.head_limits,
    )


def timer_config(policy: Policy) -> TimerConfig:
    """The transaction layer's RFC 3261 timers (T1, T2, T4) in seconds."""
    sip = policy.settings.sip
    return TimerConfig(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000)


def wanted_registrations(
    policy: Policy, auth: dict[str, ClientAuth], user_agent: str | None
) -> list[Registration]:
    """A registration per trunk marked ``register`` (RFC 3261 §10)."""
    wanted = []
    for trunk in policy.trunks.values():
        spec = trunk.register
        if spec is None:
            continue
        interface = policy.interfaces[trunk.interface]
        wanted.append(
            Registration(
                trunk,
                interface,
                RegistrationSpec(
                    spec.aor_user,
                    spec.domain,
                    spec.expires_s,
                    spec.contact_user,
                    contact_port=interface.port_for(trunk.transport),
                ),
                auth.get(trunk.name),
                user_agent,
            )
        )
    return wanted
