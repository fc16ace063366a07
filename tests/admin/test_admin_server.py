"""Serving: the token's sources, the loopback rule, and a real uvicorn in the current loop."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from admin_fakes import AUTH, TOKEN, FakeContext, call

from sbc.admin.api import create_app
from sbc.admin.server import (
    MIN_TOKEN_LENGTH,
    AdminConfigError,
    AdminServer,
    AdminSettings,
    check_bind,
    launch_admin,
    load_token,
    start_admin,
)

WAIT_S = 10.0  # bound on every wait below; nothing is timed


# --- the token ------------------------------------------------------------------------


def test_token_from_the_environment_is_stripped() -> None:
    assert load_token(environ={"SBC_ADMIN_TOKEN": f"  {TOKEN}\n"}) == TOKEN
    assert load_token("OTHER", environ={"OTHER": "b" * 32}) == "b" * 32


@pytest.mark.parametrize("environ", [{}, {"SBC_ADMIN_TOKEN": ""}, {"SBC_ADMIN_TOKEN": " \n"}])
def test_no_token_anywhere_is_none(environ: dict[str, str]) -> None:
    assert load_token(environ=environ) is None


def test_the_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    path.chmod(0o600)
    assert load_token(file=path, environ={"SBC_ADMIN_TOKEN": "from-env"}) == TOKEN


@pytest.mark.parametrize("content", ["", " \n\n"])
def test_an_empty_token_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(AdminConfigError, match="is empty"):
        load_token(file=path, environ={"SBC_ADMIN_TOKEN": "from-env"})


def test_a_missing_token_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AdminConfigError, match="admin token file"):
        load_token(file=tmp_path / "absent", environ={})


@pytest.mark.parametrize("token", ["two words", "t\u00f6ken", "tab\there"])
def test_a_token_that_cannot_travel_in_a_header_is_an_error(token: str) -> None:
    with pytest.raises(AdminConfigError, match="printable ASCII") as caught:
        load_token(environ={"SBC_ADMIN_TOKEN": token})
    assert token not in str(caught.value)


SHORT_TOKEN = "0123456789abcdefghij-short_token"[: MIN_TOKEN_LENGTH - 1]


def test_a_short_token_from_the_environment_is_refused_without_showing_it() -> None:
    with pytest.raises(AdminConfigError, match=f"at least {MIN_TOKEN_LENGTH} characters") as caught:
        load_token(environ={"SBC_ADMIN_TOKEN": SHORT_TOKEN})
    assert "SBC_ADMIN_TOKEN" in str(caught.value)
    assert SHORT_TOKEN not in str(caught.value)


def test_a_short_token_in_a_file_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SHORT_TOKEN + "\n")
    path.chmod(0o600)
    with pytest.raises(AdminConfigError, match=f"at least {MIN_TOKEN_LENGTH} characters") as caught:
        load_token(file=path, environ={"SBC_ADMIN_TOKEN": TOKEN})
    assert str(path) in str(caught.value)
    assert SHORT_TOKEN not in str(caught.value)


def test_a_token_of_exactly_the_minimum_length_is_accepted() -> None:
    token = "k" * MIN_TOKEN_LENGTH
    assert load_token(environ={"SBC_ADMIN_TOKEN": token}) == token


@pytest.mark.parametrize(
    "mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610, 0o601], ids="{:04o}".format
)
def test_a_token_file_group_or_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    """Readable (or writable) by anyone but its owner: refused, with the mode and the fix."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    with pytest.raises(AdminConfigError) as caught:
        load_token(file=path, environ={})
    message = str(caught.value)
    assert f"mode {mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert TOKEN not in message


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700], ids="{:04o}".format)
def test_an_owner_only_token_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    assert load_token(file=path, environ={}) == TOKEN


def test_settings_never_show_the_token() -> None:
    settings = AdminSettings(token=TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


# --- the bind rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "", "192.0.2.10", "10.0.0.1", "2001:db8::1", "sbc.example.com"]
)
def test_non_loopback_bind_without_token_refuses_to_start(host: str) -> None:
    with pytest.raises(AdminConfigError, match="without a token"):
        check_bind(host, None)
    with pytest.raises(AdminConfigError):
        check_bind(host, "")
    check_bind(host, TOKEN)  # with a token, any address


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_bind_without_token_is_allowed(host: str) -> None:
    check_bind(host, None)


def test_launch_refuses_a_public_bind_before_binding_anything() -> None:
    async def body() -> None:
        with pytest.raises(AdminConfigError):
            await launch_admin(FakeContext(), AdminSettings(host="0.0.0.0", port=0))

    asyncio.run(body())


# --- a real server --------------------------------------------------------------------


def serving(
    test: Callable[[AdminServer, httpx.AsyncClient], Awaitable[None]],
    *,
    token: str | None = TOKEN,
) -> None:
    """Start the API on 127.0.0.1 with a free port, run ``test``, stop it, all bounded."""

    async def body() -> None:
        ctx = FakeContext(active={"call-1": call(1)})
        async with asyncio.timeout(WAIT_S):
            server = await launch_admin(ctx, AdminSettings("127.0.0.1", 0, token))
        try:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base, timeout=WAIT_S) as http:
                await test(server, http)
        finally:
            async with asyncio.timeout(WAIT_S):
                await server.stop()
        assert server.task.done()

    asyncio.run(body())


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(WAIT_S)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_real_server_answers_and_stops_cleanly() -> None:
    ports: list[int] = []

    async def test(server: AdminServer, http: httpx.AsyncClient) -> None:
        ports.append(server.port)
        assert server.host == "127.0.0.1"
        assert server.port > 0
        health = await http.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert (await http.get("/calls")).status_code == 401
        calls = await http.get("/calls", headers=AUTH)
        assert calls.json()["total"] == 1
        assert "server" not in calls.headers

    serving(test)
    assert port_is_closed(ports[0])


def test_a_real_server_decodes_encoded_traversal_into_a_404() -> None:
    async def test(_server: AdminServer, http: httpx.AsyncClient) -> None:
        for raw in ("/policies/..%2F..%2Fetc%2Fpasswd", "/policies/%2e%2e%2fsbc.yaml"):
            response = await http.get(httpx.URL(raw), headers=AUTH)
            assert response.status_code == 404, raw
            assert response.headers["content-type"] == "application/problem+json"

    serving(test)


def test_the_server_leaves_signal_handlers_to_the_sbc() -> None:
    def sbc_handler(_signum: int, _frame: object) -> None:  # pragma: no cover
        raise AssertionError("never delivered in this test")

    handled = (signal.SIGTERM, signal.SIGINT)
    before = {number: signal.signal(number, sbc_handler) for number in handled}
    seen: list[object] = []

    async def test(_server: AdminServer, _http: httpx.AsyncClient) -> None:
        seen.extend(signal.getsignal(number) for number in handled)

    try:
        serving(test)
        assert seen == [sbc_handler, sbc_handler]
        assert [signal.getsignal(number) for number in handled] == [sbc_handler, sbc_handler]
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def test_an_open_server_on_loopback_serves_without_a_token() -> None:
    async def test(_server: AdminServer, http: httpx.AsyncClient) -> None:
        assert (await http.get("/calls")).status_code == 200
        refused = await http.get("/calls", headers={"Host": "rebound.example"})
        assert refused.status_code == 421

    serving(test, token=None)


def test_a_busy_port_is_an_oserror_not_an_exit() -> None:
    """uvicorn binding itself would ``sys.exit`` on a busy port, out of the SBC's loop."""

    async def body() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            app = create_app(FakeContext(), token=TOKEN)
            async with asyncio.timeout(WAIT_S):
                with pytest.raises(OSError, match="in use") as caught:
                    await start_admin(app, "127.0.0.1", port)
        assert caught.value.errno == errno.EADDRINUSE

    asyncio.run(body())
