"""Policy problems as data: every problem carries the file and line an operator must edit.

The loader never stops at the first problem: it collects all of them so one
`sbc check` run shows everything wrong with an edit, then raises a single
:class:`PolicyError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One problem in one policy file.

    ``file`` is the file name relative to the policy directory (or the
    directory itself when it cannot be read). ``line`` is 1-based; 0 means the
    problem concerns the file as a whole (it is missing or unreadable).
    """

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PolicyError(Exception):
    """A policy was refused; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: Iterable[PolicyIssue]) -> None:
        self.issues: list[PolicyIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
