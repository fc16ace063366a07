"""Fresh identifiers: tags, Call-IDs and Via branches (RFC 3261 §19.3).

Random enough to be globally unique and unguessable (they must never reveal
the other leg), and cheap: one urandom read per identifier.
"""

from __future__ import annotations

import os

from sbc.sip.via import MAGIC_COOKIE


def random_token(nbytes: int = 8) -> str:
    return os.urandom(nbytes).hex()


def new_tag() -> str:
    return random_token(6)


def new_call_id(host: str) -> str:
    return f"{random_token(12)}@{host}"


def new_branch() -> str:
    return MAGIC_COOKIE + random_token(10)
