"""Fixtures that write small policies whose line numbers tests can state exactly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

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


@pytest.fixture
def write_policy(tmp_path: Path) -> WritePolicy:
    """Return ``write(**overrides)``: the valid policy with some files replaced.

    Keyword names are file stems (``trunks="..."`` replaces ``trunks.yaml``,
    ``sbc="..."`` adds ``sbc.yaml``); ``None`` leaves a file out.
    """

    def write(**overrides: str | None) -> Path:
        files: dict[str, str | None] = dict(VALID)
        files.update({f"{stem}.yaml": text for stem, text in overrides.items()})
        for name, text in files.items():
            if text is not None:
                (tmp_path / name).write_text(text, encoding="utf-8")
        return tmp_path

    return write
