"""The leak guard: the last check of topology hiding (see :mod:`sbc.b2bua.leaks.guard`)."""

from sbc.b2bua.leaks.guard import LeakGuard, Mode
from sbc.b2bua.leaks.ids import CallIds, call_ids

__all__ = ["CallIds", "LeakGuard", "Mode", "call_ids"]
