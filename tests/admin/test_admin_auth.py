"""Bearer-token access: every route but /health needs the token, checked before routing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from admin_fakes import (
    AUTH,
    LOOPBACK_URL,
    OPERATIONS,
    T0,
    TOKEN,
    FakeContext,
    assert_problem,
    call,
    client,
)
from fastapi.testclient import TestClient

from sbc.admin.api import create_app

AUTH_BURST = 10  # failed attempts a client gets before 429


def guarded_context() -> FakeContext:
    return FakeContext(active={"call-1": call(1)})


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_token_is_401_and_nothing_happens(method: str, path: str) -> None:
    ctx = guarded_context()
    response = client(ctx, authorized=False).request(method, path, content="trunks: []")
    body = assert_problem(response, 401)
    assert body["detail"] == "a bearer token is required"
    assert response.headers["www-authenticate"] == 'Bearer realm="sbc-admin"'
    assert ctx.hung_up == []
    assert ctx.written == []
    assert ctx.asked_files == []


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_wrong_token_is_401(method: str, path: str) -> None:
    ctx = guarded_context()
    response = client(ctx, authorized=False).request(
        method, path, headers={"Authorization": f"Bearer {TOKEN}x"}
    )
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert ctx.hung_up == []


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {TOKEN}",  # another scheme
        "Bearer",  # no credentials
        "Bearer   ",
        TOKEN,  # no scheme
        f"Bearer {TOKEN[:-1]}",  # a prefix of the right token
        "Bearer \u00e9t\u00e9",  # not even ASCII
    ],
)
def test_malformed_authorization_is_401(authorization: str) -> None:
    anonymous = client(authorized=False)
    response = anonymous.get("/calls", headers={"Authorization": authorization.encode()})
    assert_problem(response, 401)


def test_right_token_is_served_and_the_scheme_is_case_insensitive() -> None:
    anonymous = client(guarded_context(), authorized=False)
    assert anonymous.get("/calls", headers=AUTH).status_code == 200
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert anonymous.get("/calls/call-1", headers=lower).status_code == 200


def test_health_is_open() -> None:
    response = client(authorized=False).get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_paths_need_the_token_too() -> None:
    """An unauthenticated client cannot map the API: 401, not 404."""
    anonymous = client(authorized=False)
    assert_problem(anonymous.get("/no/such/thing"), 401)
    assert_problem(anonymous.get("/health/"), 401)
    assert_problem(client().get("/no/such/thing"), 404)


def test_malformed_body_without_token_is_401_not_400() -> None:
    response = client(authorized=False).post(
        "/policies/validate", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 401)


def test_without_a_token_the_api_is_open_to_loopback_hosts() -> None:
    open_api = client(guarded_context(), token=None)
    assert open_api.get("/calls").status_code == 200
    for host in ("localhost:8080", "127.0.0.1", "127.0.0.2:8080", "[::1]:8080", "LOCALHOST"):
        assert open_api.get("/calls", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "192.0.2.1", "[2001:db8::1]"]
)
def test_open_api_refuses_other_host_names(host: str) -> None:
    """DNS rebinding: a page from evil.example resolved to 127.0.0.1 still says its name."""
    ctx = guarded_context()
    response = client(ctx, token=None).delete("/calls/call-1", headers={"Host": host})
    assert_problem(response, 421)
    assert ctx.hung_up == []


def test_open_api_documents_no_security() -> None:
    schema = client(token=None).get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert all(
        "401" not in operation["responses"]
        for operations in schema["paths"].values()
        for operation in operations.values()
    )


# --- throttled failures ------------------------------------------------------------------


def client_from(address: str, clock: Callable[[], float] | None = None) -> TestClient:
    kwargs = {"clock": clock} if clock is not None else {}
    app = create_app(guarded_context(), token=TOKEN, **kwargs)
    return TestClient(app, base_url=LOOPBACK_URL, client=(address, 40000))


def test_repeated_wrong_tokens_are_throttled_with_retry_after() -> None:
    http = client_from("198.51.100.7")
    wrong = {"Authorization": f"Bearer {TOKEN}x"}
    statuses = [http.get("/calls", headers=wrong).status_code for _ in range(AUTH_BURST)]
    assert statuses == [401] * AUTH_BURST
    held = http.get("/calls", headers=wrong)
    body = assert_problem(held, 429)
    assert int(held.headers["retry-after"]) >= 1
    assert "failed" in body["detail"]
    # While held, even the right token is not looked at: guessing gains nothing.
    assert http.get("/calls", headers=AUTH).status_code == 429
    assert http.get("/health").status_code == 200  # liveness probes carry no token


def test_a_throttled_client_does_not_lock_out_another() -> None:
    now = [T0]
    app = create_app(guarded_context(), token=TOKEN, clock=lambda: now[0])
    attacker = TestClient(app, base_url=LOOPBACK_URL, client=("198.51.100.7", 40000))
    operator = TestClient(app, base_url=LOOPBACK_URL, client=("198.51.100.8", 40000))
    for _ in range(AUTH_BURST + 5):
        attacker.get("/calls", headers={"Authorization": "Bearer wrong"})
    assert attacker.get("/calls", headers=AUTH).status_code == 429
    assert operator.get("/calls", headers=AUTH).status_code == 200


def test_a_throttled_client_is_served_again_once_drained() -> None:
    now = [T0]
    http = client_from("198.51.100.7", clock=lambda: now[0])
    for _ in range(AUTH_BURST):
        http.get("/calls")  # no credentials at all counts too
    held = http.get("/calls", headers=AUTH)
    assert held.status_code == 429
    now[0] += int(held.headers["retry-after"])
    assert http.get("/calls", headers=AUTH).status_code == 200


def test_the_open_api_documents_no_throttling_and_the_guarded_one_does() -> None:
    guarded = client().get("/openapi.json").json()
    assert all(
        "429" in operation["responses"]
        for path, operations in guarded["paths"].items()
        for operation in operations.values()
        if path != "/health"
    )
    open_schema = client(token=None).get("/openapi.json").json()
    assert all(
        "429" not in operation["responses"]
        for operations in open_schema["paths"].values()
        for operation in operations.values()
    )
