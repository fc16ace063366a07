"""Per-node transcoding capacity: a counter of admitted sessions.

Transcoding costs real CPU per stream (bench/transcode.py measures how
much), so a node admits at most ``max_sessions`` at once (issue 7). A
refused session is the caller's to answer: 488 Not Acceptable Here when no
common codec is left without transcoding, or 503 with Retry-After.
Keys are the caller's session identifiers; admitting a key already
admitted (a re-INVITE of the same call) takes no second slot.
"""

from __future__ import annotations


class TranscodePool:
    """Admission counter for transcoding sessions on this node."""

    def __init__(self, max_sessions: int) -> None:
        if max_sessions < 0:
            raise ValueError(f"max_sessions must be >= 0, not {max_sessions}")
        self.max_sessions = max_sessions
        self._sessions: set[str] = set()
        #: Sessions refused since start, for metrics.
        self.refused = 0

    def acquire(self, key: str) -> bool:
        """Admit ``key``; False (and nothing held) when the node is full."""
        if key in self._sessions:
            return True
        if len(self._sessions) >= self.max_sessions:
            self.refused += 1
            return False
        self._sessions.add(key)
        return True

    def refuse(self) -> None:
        """A call turned away because the node was full, seen before any
        :meth:`acquire` (an offer with no codec in common): counted alike."""
        self.refused += 1

    def release(self, key: str) -> None:
        """Give ``key``'s slot back; releasing an unknown key is harmless."""
        self._sessions.discard(key)

    def resize(self, max_sessions: int) -> None:
        """New capacity (policy reload); sessions above it keep running, new ones wait."""
        if max_sessions < 0:
            raise ValueError(f"max_sessions must be >= 0, not {max_sessions}")
        self.max_sessions = max_sessions

    @property
    def in_use(self) -> int:
        return len(self._sessions)

    @property
    def available(self) -> int:
        return max(self.max_sessions - len(self._sessions), 0)
