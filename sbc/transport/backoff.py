"""Reconnect backoff per destination: a dead peer is not hammered with connects.

After a connect (or TLS handshake) toward a destination fails, further
connects to it wait ``initial`` seconds, doubling with each consecutive
failure up to ``maximum``. Sends in the meantime fail at once, so the core
learns "transport error" (RFC 3261 §17.1.4, a 503 for the client
transaction) without a connect timeout per message and moves on to the
next trunk. A success forgets the destination.

Pure: callers pass ``now`` (the event loop's clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sbc.transport.types import TLS, Peer

__all__ = ["BackoffPolicy", "ConnectBackoff"]

#: Destinations remembered at most; past it, those whose wait is over are forgotten.
_MAX_TRACKED = 4096


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Backoff settings; ``transports`` lists where it applies (stream transports only)."""

    initial: float = 1.0
    maximum: float = 32.0
    transports: frozenset[str] = field(default_factory=lambda: frozenset({TLS}))

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")


@dataclass(slots=True)
class _Failing:
    failures: int
    retry_at: float


class ConnectBackoff:
    """Consecutive connect failures and the time of the next allowed attempt, per peer."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._failing: dict[Peer, _Failing] = {}

    def wait(self, peer: Peer, now: float) -> float:
        """Seconds before a connect to ``peer`` is allowed (0 when it is)."""
        state = self._failing.get(peer)
        if state is None or peer.transport not in self.policy.transports:
            return 0.0
        return max(0.0, state.retry_at - now)

    def failed(self, peer: Peer, now: float) -> float:
        """Record a failed connect to ``peer``; return the wait before the next one."""
        if peer.transport not in self.policy.transports:
            return 0.0
        state = self._failing.get(peer)
        failures = 1 if state is None else state.failures + 1
        delay = min(self.policy.initial * float(2 ** min(failures - 1, 62)), self.policy.maximum)
        if state is None and len(self._failing) >= _MAX_TRACKED:
            self._forget_expired(now)
            if len(self._failing) >= _MAX_TRACKED:  # all still waiting: drop the oldest
                del self._failing[next(iter(self._failing))]
        self._failing[peer] = _Failing(failures, now + delay)
        return delay

    def succeeded(self, peer: Peer) -> None:
        self._failing.pop(peer, None)

    def _forget_expired(self, now: float) -> None:
        expired = [peer for peer, state in self._failing.items() if state.retry_at <= now]
        for peer in expired:
            del self._failing[peer]
