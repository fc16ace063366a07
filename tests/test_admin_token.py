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


def test_the_generated_token_never_lands_in_a_file_others_could_read(tmp_path: Path) -> None:
    """Written to a new owner-only file then renamed over the old one: a reader of the
    old, world-readable file (an open handle, a hard link) never sees the new token."""
    path = tmp_path / "sbc-admin.token"
    path.write_text("old\n")
    path.chmod(0o644)
    link = tmp_path / "hard-link"
    link.hardlink_to(path)
    with path.open() as reader:
        token = generated_token(path)
        assert token not in reader.read()
    assert token not in link.read_text()
    assert path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard-link", "sbc-admin.token"]
