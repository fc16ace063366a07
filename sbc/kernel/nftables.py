"""A thin typed binding to ``libnftables.so.1``: nftables commands in-process.

``nft`` (the program) costs a fork and 3-33 ms per change; the library it is
built on takes the same command text and costs about 100 µs in-process, so
bans can be synced every second at no measurable cost. Debian's
``python3-nftables`` wraps the same library but lives outside our virtualenv;
this is the handful of calls we need, through :mod:`ctypes`:

- ``nft_ctx_new`` / ``nft_ctx_free``: one context per process. It holds the
  netlink socket, which also owns the tables made with ``flags owner``: the
  kernel deletes them when the socket closes, even if the process is killed.
- ``nft_ctx_buffer_output`` / ``nft_ctx_buffer_error``: output and errors go
  to buffers we read back, not to stdout/stderr.
- ``nft_run_cmd_from_buffer``: run a buffer of commands as ONE transaction
  (all or nothing).
- ``nft_ctx_output_set_flags`` with JSON: listings we parse (counters).

A context is not thread-safe: use it from one thread (the event loop's).
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

LIBRARY = "libnftables.so.1"

#: ``enum nft_ctx_output_flags`` (libnftables.h): NFT_CTX_OUTPUT_JSON.
_OUTPUT_JSON = 1 << 4
_NFT_CTX_DEFAULT = 0

#: Error text libnftables prints for EPERM (from strerror): not root, no CAP_NET_ADMIN.
_EPERM_TEXT = "Operation not permitted"


#: libnftables echoes the failing command after its error line: a batch of bans
#: can be megabytes, so an error keeps its first lines, this long at most.
_MAX_ERROR_CHARS = 400


class NftablesError(Exception):
    """A command failed; the message is libnftables' error text (cut short)."""

    def __init__(self, message: str) -> None:
        text = message.strip() or "libnftables failed"
        if len(text) > _MAX_ERROR_CHARS:
            text = text[:_MAX_ERROR_CHARS] + "..."
        super().__init__(text)

    @property
    def permission_denied(self) -> bool:
        """Whether the kernel refused us (no CAP_NET_ADMIN in our network namespace)."""
        return _EPERM_TEXT in str(self)


class NftablesUnavailableError(NftablesError):
    """libnftables could not be loaded (not installed: Debian package ``libnftables1``)."""


def _declare(lib: ctypes.CDLL) -> None:
    pointer = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = pointer
    lib.nft_ctx_free.argtypes = [pointer]
    lib.nft_ctx_free.restype = None
    lib.nft_ctx_buffer_output.argtypes = [pointer]
    lib.nft_ctx_buffer_output.restype = ctypes.c_int
    lib.nft_ctx_buffer_error.argtypes = [pointer]
    lib.nft_ctx_buffer_error.restype = ctypes.c_int
    lib.nft_ctx_get_output_buffer.argtypes = [pointer]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [pointer]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_output_get_flags.argtypes = [pointer]
    lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
    lib.nft_ctx_output_set_flags.argtypes = [pointer, ctypes.c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    lib.nft_run_cmd_from_buffer.argtypes = [pointer, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int


class Nftables:
    """One libnftables context: :meth:`run` command text, :meth:`run_json` listings."""

    def __init__(self, library: str = LIBRARY) -> None:
        try:
            lib = ctypes.CDLL(library)
            _declare(lib)
        except (OSError, AttributeError) as exc:  # absent, or not the library we know
            raise NftablesUnavailableError(f"cannot load {library}: {exc}") from None
        ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
        if not ctx:
            raise NftablesUnavailableError("nft_ctx_new failed")
        self._lib = lib
        self._ctx: int | None = ctx
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._flags = int(lib.nft_ctx_output_get_flags(ctx))

    def run(self, commands: str) -> str:
        """Run ``commands`` (one transaction); their output; :class:`NftablesError` on failure."""
        return self._run(commands, json_output=False)

    def run_json(self, command: str) -> Any:
        """Run a listing command and parse its JSON output (``{"nftables": [...]}``)."""
        text = self._run(command, json_output=True)
        try:
            return json.loads(text) if text.strip() else {"nftables": []}
        except ValueError as exc:
            raise NftablesError(f"unreadable JSON from libnftables: {exc}") from None

    def close(self) -> None:
        """Free the context; tables it owns (``flags owner``) go with its socket."""
        if self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def _run(self, commands: str, *, json_output: bool) -> str:
        ctx = self._ctx
        if ctx is None:
            raise NftablesError("the libnftables context is closed")
        lib = self._lib
        lib.nft_ctx_output_set_flags(ctx, self._flags | (_OUTPUT_JSON if json_output else 0))
        status = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        output = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        if status != 0:
            raise NftablesError(error)
        return output
