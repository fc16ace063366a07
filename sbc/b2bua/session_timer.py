"""Session timers (RFC 4028), per leg.

Each leg negotiates its own interval and refresher. When the peer is the
refresher, a session that sees no refresh for the interval (minus the
§10 margin of min(32 s, interval/3)) is stale and the call ends. When we
are the refresher, we send an UPDATE at half the interval; a refresh that
fails ends the call — that is how dead peers are noticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbc.sip.errors import ParseError
from sbc.sip.params import parse_params


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """``Session-Expires: 1800;refresher=uac`` → (1800, "uac")."""
    delta, _, params = value.partition(";")
    delta = delta.strip()
    if not delta.isdigit():
        raise ParseError(f"invalid Session-Expires {value!r}")
    refresher = parse_params(params).get("refresher")
    if refresher is not None:
        refresher = refresher.lower()
        if refresher not in ("uac", "uas"):
            raise ParseError(f"invalid refresher {refresher!r}")
    return int(delta), refresher


@dataclass(slots=True)
class SessionTimer:
    interval: int
    we_refresh: bool
    deadline: float = 0.0

    def restart(self, now: float) -> None:
        """A refresh happened (or the session just started)."""
        if self.we_refresh:
            self.deadline = now + self.interval / 2
        else:
            self.deadline = now + self.interval - min(32.0, self.interval / 3)
