"""Serving the admin API: uvicorn inside the SBC's own event loop.

One process, one loop: the API reads the live SBC through its
:class:`~sbc.admin.context.AdminContext`, with no IPC and no second copy of
state. uvicorn runs as a task of the current loop; it installs no signal
handlers (the SBC owns SIGTERM and stops the API itself), runs no lifespan,
leaves the process's logging alone and writes no access log, so neither a
token nor an ``Authorization`` header is ever logged. The listening socket
is bound here, before uvicorn starts, so a busy port is an ``OSError`` to
the caller rather than uvicorn's ``sys.exit``.

Binding: loopback by default; :func:`check_bind` refuses any other address
unless a token is set. The token comes from :func:`load_token`: a file
(the deliberate, secret-friendly way: a Docker or systemd credential, mode
0600 or 0400) wins over the environment variable when both are given; a
token shorter than :data:`MIN_TOKEN_LENGTH` or a file others may read stops
the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI

from sbc.admin.access import is_loopback_host
from sbc.admin.api import create_app
from sbc.admin.context import AdminContext
from sbc.admin.routers.health import Metrics

log = structlog.get_logger("sbc.admin")

TOKEN_ENV = "SBC_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 32  # characters; the generated token has 43 (256 bits)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
_POLL_S = 0.01


class AdminConfigError(ValueError):
    """The admin API cannot start as configured (the message says why and what to do)."""


@dataclass(frozen=True)
class AdminSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        token = "set" if self.token else "none"
        return f"AdminSettings(host={self.host!r}, port={self.port}, token={token})"


def load_token(
    env_var: str = TOKEN_ENV,
    file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The bearer token: from ``file`` when given, else from ``env_var``; None if neither.

    Surrounding whitespace (a trailing newline) is stripped. An empty
    variable counts as unset; a given file that is missing, unreadable,
    empty, or reachable by anyone but its owner is an :class:`AdminConfigError`,
    and so is a token shorter than :data:`MIN_TOKEN_LENGTH`: the operator
    asked for a token, and running with a weak or exposed one would be worse
    than not starting. No message ever holds the token.
    """
    if file is not None:
        token = _read_token_file(file)
        if not token:
            raise AdminConfigError(f"admin token file {file} is empty")
        source = str(file)
    else:
        token = (environ if environ is not None else os.environ).get(env_var, "").strip()
        if not token:
            return None
        source = env_var
    if not token.isascii() or not token.isprintable() or " " in token:
        raise AdminConfigError(f"admin token from {source}: printable ASCII without spaces only")
    if len(token) < MIN_TOKEN_LENGTH:
        raise AdminConfigError(
            f"admin token from {source} is too short: use at least {MIN_TOKEN_LENGTH} characters"
            " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _read_token_file(file: Path) -> str:
    """The stripped text of an owner-only ``file`` (mode and content read from one open)."""
    try:
        fd = os.open(file, os.O_RDONLY)
        with os.fdopen(fd, encoding="utf-8") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise AdminConfigError(
                    f"admin token file {file} has mode {mode:04o}: group and others must have"
                    f" no access; run: chmod 600 {file}"
                )
            return handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminConfigError(f"admin token file {file}: {exc}") from exc


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (an open API hangs up calls)."""
    if token or is_loopback_host(host):
        return
    where = host or "every interface"
    raise AdminConfigError(
        f"refusing to serve the admin API on {where} without a token: set {TOKEN_ENV} "
        f"(or a token file), or bind to {DEFAULT_HOST}"
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: SIGINT/SIGTERM belong to the SBC."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class AdminServer:
    """A running admin API; :meth:`stop` ends it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    sock: socket.socket
    host: str  # as bound
    port: int  # as bound: the real one when started on port 0

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop accepting, let requests in flight finish (bounded), and end the task."""
        self.server.should_exit = True
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        if not done:
            self.server.force_exit = True
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        elif not self.task.cancelled() and self.task.exception() is not None:
            log.warning("admin API ended with an error", error=repr(self.task.exception()))
        self.sock.close()
        log.info("admin API stopped")


async def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on the first address ``host`` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host.strip("[]"),  # "[::1]" is how a URL writes it
        port,
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV,
    )
    if not infos:
        raise OSError(f"admin API: {host!r} resolves to no address")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_admin(
    app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> AdminServer:
    """Serve ``app`` on ``host:port`` as a task of the running loop; return once listening.

    Call :func:`check_bind` first (or use :func:`launch_admin`, which does).
    Raises ``OSError`` when the address cannot be bound.
    """
    sock = await _bind(host, port)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,  # the SBC configured logging (structlog); keep it
        access_log=False,  # an access log would be the one place headers could leak
        proxy_headers=False,  # nobody sits in front of a loopback API
        server_header=False,
        ws="none",
        timeout_graceful_shutdown=int(STOP_TIMEOUT_S),
    )
    server = _Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    bound = sock.getsockname()
    running = AdminServer(server, task, sock, host=str(bound[0]), port=int(bound[1]))
    for _ in range(int(START_TIMEOUT_S / _POLL_S)):  # bounded: uvicorn sets `started`
        if server.started:
            log.info("admin API listening", host=running.host, port=running.port)
            return running
        if task.done():
            break
        await asyncio.sleep(_POLL_S)
    await running.stop(timeout=0)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise OSError(f"admin API failed to start: {task.exception()!r}")
    raise OSError(f"admin API did not start within {START_TIMEOUT_S} s")


async def launch_admin(
    ctx: AdminContext, settings: AdminSettings, metrics: Metrics | None = None
) -> AdminServer:
    """Check the bind, build the app and serve it: the runtime's one call."""
    check_bind(settings.host, settings.token)
    app = create_app(ctx, token=settings.token, metrics=metrics)
    return await start_admin(app, settings.host, settings.port)
