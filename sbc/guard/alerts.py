"""Counting windows, throttled log lines, and the trunk authentication watch.

A trunk is identified by its address, which anyone can forge over UDP: a
failed digest authentication "from" a trunk says nothing about who sent it.
:class:`AuthWatch` therefore never bans; it counts failures per trunk and per
username, raises an alert (a counter for metrics) when either passes the
threshold within the window, and writes one log line per trunk and window at
most, however many alerts an attacker provokes (docs/security.md, "Failed
authentication"). The module is pure: time is always passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import structlog

log = structlog.get_logger("sbc.guard")

#: (trunk, username) windows kept; usernames are the attacker's choice.
AUTH_USERS_KEPT = 4096
_SHOWN_CHARS = 64


class Window:
    """Events counted in a window that opens at the first event after the last one closed."""

    __slots__ = ("count", "opened")

    def __init__(self) -> None:
        self.count = 0
        self.opened = 0.0

    def hit(self, now: float, window_s: float) -> int:
        if self.count == 0 or now - self.opened > window_s:
            self.count, self.opened = 0, now
        self.count += 1
        return self.count


class Throttle:
    """At most one log line per key and interval; counts what it held back."""

    __slots__ = ("_held", "_last")

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str, now: float, interval: float) -> int | None:
        """The number of lines held back since the last one if a line is due, else None.

        Keys must come from a bounded set (trunk names, fixed event names).
        """
        last = self._last.get(key)
        if last is not None and now - last < interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


def shown(text: str) -> str:
    """A peer-supplied string made safe for a log field: printable and bounded."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:_SHOWN_CHARS])


class AuthWatch:
    """Failed authentications of trunks: counted per trunk and username, alerted on."""

    def __init__(self) -> None:
        #: failures per trunk since start (``sbc_auth_failures_total``)
        self.failures: dict[str, int] = {}
        #: alerts raised per trunk since start (``sbc_auth_alerts_total``)
        self.alerts: dict[str, int] = {}
        self._trunks: dict[str, Window] = {}
        self._users: OrderedDict[tuple[str, str], Window] = OrderedDict()
        self._throttle = Throttle()

    def failed(
        self, trunk: str, user: str, now: float, threshold: int | None, window_s: float
    ) -> None:
        """Count one failure; alert when the trunk or the user reaches ``threshold``."""
        self.failures[trunk] = self.failures.get(trunk, 0) + 1
        if threshold is None:
            return
        trunk_window = self._trunks.get(trunk)
        if trunk_window is None:
            trunk_window = self._trunks[trunk] = Window()
        scope: Literal["trunk", "user"] | None = None
        if trunk_window.hit(now, window_s) == threshold:
            scope = "trunk"
        if self._user(trunk, user).hit(now, window_s) == threshold:
            scope = "user"
        if scope is None:
            return
        self.alerts[trunk] = self.alerts.get(trunk, 0) + 1
        held = self._throttle.due(trunk, now, window_s)
        if held is not None:
            log.warning(
                "guard.auth_alert",
                trunk=trunk,
                scope=scope,
                user=shown(user),
                failures=trunk_window.count,
                window_s=window_s,
                suppressed=held,
            )

    def users_tracked(self) -> int:
        return len(self._users)

    def _user(self, trunk: str, user: str) -> Window:
        key = (trunk, user)
        window = self._users.get(key)
        if window is None:
            window = self._users[key] = Window()
            if len(self._users) > AUTH_USERS_KEPT:
                self._users.popitem(last=False)
        else:
            self._users.move_to_end(key)
        return window
