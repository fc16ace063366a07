"""With no admin token configured, the SBC makes one: the API is never open."""

from __future__ import annotations

import stat
from pathlib import Path

from sbc.app import generated_token


def test_a_generated_token_is_random_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sbc-admin.token"
    path.write_text("old\n")
    path.chmod(0o644)
    first = generated_token(path)
    assert path.read_text() == first + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40
    assert generated_token(path) != first
