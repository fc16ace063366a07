"""Secrets referenced by policy: ``{env: NAME}`` or ``{file: path}``.

A policy file names where a password lives, never the password itself, so
``policies/`` can sit in git. The value is read when the policy is loaded and
wrapped in :class:`Secret`, whose ``str``/``repr``/format print ``***``: a
log line, an API view or a CDR built from a policy object shows nothing. Errors
name the reference (the variable, the path), never the value.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, NoReturn

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

MASK = "***"
#: A secret file is a password, not a document: refuse anything larger.
MAX_SECRET_FILE_BYTES = 4096


class Secret:
    """A string that does not print itself; :meth:`reveal` when it must be used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __reduce__(self) -> NoReturn:
        # Pickling (a worker queue, a cache) would carry the value off unmasked.
        raise TypeError("a Secret cannot be pickled")


class SecretError(Exception):
    """A secret reference that cannot be resolved; the message names the reference."""


EnvName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
FilePath = Annotated[str, Strict(), Field(min_length=1)]


class SecretRef(BaseModel):
    """Where a secret lives, as a policy writes it: exactly one of ``env`` or ``file``.

    A relative ``file`` is relative to the policy directory (the ``base``
    given to :func:`resolve_secret`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvName | None = None
    file: FilePath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        """How the reference reads in a message (its value never does)."""
        return f"environment variable {self.env!r}" if self.env else f"secret file {self.file!r}"


def resolve_secret(
    ref: SecretRef | Mapping[str, object],
    base: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Read the secret ``ref`` points at; :class:`SecretError` when it cannot.

    One trailing newline (LF or CRLF) is stripped from a file, as editors add
    one; an empty value is an error (an empty password is a mistake).
    """
    if not isinstance(ref, SecretRef):
        try:
            ref = SecretRef.model_validate(ref)
        except ValidationError as exc:
            raise SecretError(f"invalid secret reference: {_first_error(exc)}") from None
    value = _from_env(ref, environ) if ref.env else _from_file(ref, base)
    if not value:
        raise SecretError(f"{ref.describe()} is empty")
    return Secret(value)


def _from_env(ref: SecretRef, environ: Mapping[str, str] | None) -> str:
    source = os.environ if environ is None else environ
    value = source.get(ref.env or "")
    if value is None:
        raise SecretError(f"{ref.describe()} is not set")
    return value


def _from_file(ref: SecretRef, base: Path | None) -> str:
    path = Path(ref.file or "")
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretError(f"cannot read {ref.describe()}: {exc.strerror or 'error'}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretError(f"{ref.describe()} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # The codec's message quotes the offending byte: a piece of the secret.
        raise SecretError(f"{ref.describe()} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def _first_error(exc: ValidationError) -> str:
    """The first message of a pydantic error, without the input it echoes."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "reference"
    return f"{where}: {first['msg']}"
