"""A small valid policy, written compactly so tests can state exact line numbers.

A plain module (not conftest.py) so its name cannot collide with other test folders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sbc.policy import RouteContext, Trunk
from sbc.sip.headers import Headers

INTERFACES = """\
interfaces:
  - name: external
    address: 127.0.0.1
    port: 5060
    transports: [udp, tcp]
  - name: internal
    address: 127.0.0.2
    port: 5060
    transports: [udp, tcp]
"""

TRUNKS = """\
trunks:
  - name: carrier
    interface: external
    address: 127.0.0.10
  - name: pbx
    interface: internal
    address: 127.0.0.20
"""

ROUTES = """\
routes:
  - name: carrier-to-pbx
    from_trunk: carrier
    to: [pbx]
  - name: pbx-to-carrier
    from_trunk: pbx
    to: [carrier]
"""

VALID = {"interfaces.yaml": INTERFACES, "trunks.yaml": TRUNKS, "routes.yaml": ROUTES}

WritePolicy = Callable[..., Path]
"""Type of the ``write_policy`` fixture: ``write(**overrides) -> directory``."""


#: A Wednesday, mid-morning UTC: inside any "office hours" window.
WEDNESDAY_10AM = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def context(
    trunk: Trunk | None,
    interface: str,
    ruri_user: str,
    *,
    from_user: str = "",
    headers: dict[str, str] | None = None,
    wall: datetime = WEDNESDAY_10AM,
) -> RouteContext:
    """What routing sees of a new call."""
    return RouteContext(
        trunk=trunk.name if trunk is not None else None,
        interface=interface,
        ruri_user=ruri_user,
        from_user=from_user,
        headers=Headers(list((headers or {}).items())),
        wall=wall,
    )
