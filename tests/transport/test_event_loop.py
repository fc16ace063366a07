"""install_best_event_loop: uvloop when importable, the stdlib loop otherwise."""

from __future__ import annotations

import asyncio
import builtins
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from sbc.transport import install_best_event_loop


@pytest.fixture(autouse=True)
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_installs_uvloop_when_available() -> None:
    assert install_best_event_loop() == "uvloop"
    loop = asyncio.new_event_loop()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "uvloop", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    before = asyncio.get_event_loop_policy()
    assert install_best_event_loop() == "asyncio"
    assert asyncio.get_event_loop_policy() is before
