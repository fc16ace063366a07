"""A small valid policy, written compactly so tests can state exact line numbers.

A plain module (not conftest.py) so its name cannot collide with other test folders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
