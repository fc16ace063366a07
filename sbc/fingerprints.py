"""Certificate fingerprints as operators write them and as we compare them.

Pure, so both the policy schema (which must not import the transport layer)
and the TLS transport use the one rule.
"""

from __future__ import annotations

SHA256_HEX_DIGITS = 64


def normalize_fingerprint(text: str) -> str:
    """``AB:CD:…`` or ``abcd…`` (optionally ``sha256:``-prefixed) to 64 lower-case
    hex digits; :class:`ValueError` for anything else."""
    value = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(value) != SHA256_HEX_DIGITS or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"'{text}' is not a SHA-256 fingerprint (64 hex digits)")
    return value
