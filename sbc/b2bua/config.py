"""Settings of the call engine, taken from the policy's ``sbc.yaml``."""

from __future__ import annotations

from dataclasses import dataclass

from sbc.sip.head import DEFAULT_HEAD_LIMITS, HeadLimits

#: RFC 4028 §4: the smallest allowed Min-SE.
MIN_SE_FLOOR = 90

ALLOW_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, NOTIFY, REFER, MESSAGE"
SUPPORTED_EXTENSIONS = frozenset(("100rel", "timer"))


@dataclass(frozen=True, slots=True)
class CallConfig:
    user_agent: str | None = "sbc"
    session_expires: int = 1800  # RFC 4028 interval we ask for on B-legs
    min_se: int = MIN_SE_FLOOR
    no_answer_timeout: float = 180.0  # like RFC 3261 §16.6 Timer C (> 3 min)
    max_call_duration: float = 0.0  # 0 = unlimited
    bye_timeout: float = 32.0  # how long a BYE may stay unanswered
    t1: float = 0.5  # RFC 3262 §3 reliable provisionals and §9.1 CANCEL guard
    head_limits: HeadLimits = DEFAULT_HEAD_LIMITS  # what the core parses at all
