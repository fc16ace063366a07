"""Names one policy file uses that another file declares.

Files validate alone; a rule naming trunk ``carrier`` in ``security.yaml``
can only be checked once ``trunks.yaml`` is known. Each file's module lists
its references as :class:`Reference` values and the cross-file check
(:mod:`sbc.policy.crossref`) reports the unknown ones at their line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sbc.policy.source import Loc

ReferenceKind = Literal["interface", "trunk"]


@dataclass(frozen=True)
class Reference:
    """``name`` (an interface or trunk) used at path ``loc`` of one file."""

    loc: Loc
    kind: ReferenceKind
    name: str
