"""Fixtures that write small policies whose line numbers tests can state exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import VALID, WritePolicy


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
