"""Policies (list, read, validate, replace; no path traversal) and the route what-if."""

from __future__ import annotations

import pytest
from admin_fakes import BAD_MARK, ROUTES_YAML, TRUNKS_YAML, FakeContext, assert_problem, client

from sbc.admin.context import Resolution
from sbc.admin.models import MAX_POLICY_BYTES

NEW_TRUNKS = "trunks:\n  - name: carrier\n    address: 127.0.0.11\n"
YAML = {"Content-Type": "application/yaml"}


def test_policies_list_files_and_the_last_reload() -> None:
    body = client().get("/policies").json()
    assert body == {
        "files": ["trunks.yaml", "routes.yaml"],
        "last_reload": {
            "at": 1_700_000_000.0,
            "applied": True,
            "issues": [],
            "applied_count": 2,
            "refused_count": 1,
        },
    }


def test_read_a_policy_as_json_or_as_raw_yaml() -> None:
    api = client()
    assert api.get("/policies/routes.yaml").json() == {
        "name": "routes.yaml",
        "content": ROUTES_YAML,
    }
    raw = api.get("/policies/trunks.yaml", headers={"Accept": "application/yaml"})
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/yaml")
    assert raw.text == TRUNKS_YAML


@pytest.mark.parametrize(
    "path",
    [
        "/policies/../etc/passwd",
        "/policies/..%2Fetc%2Fpasswd",
        "/policies/..%2fetc%2fpasswd",
        "/policies/%2e%2e%2fetc%2fpasswd",
        "/policies/%2e%2e",
        "/policies/%2Fetc%2Fpasswd",
        "/policies/..%5Cetc%5Cpasswd",
        "/policies/trunks.yaml%00",
        "/policies/TRUNKS.YAML",
        "/policies/sbc.yaml",  # a policy name, but not a file the context lists
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_names_outside_the_listed_files_are_404(path: str, method: str) -> None:
    ctx = FakeContext()
    response = client(ctx).request(method, path, content="x: 1", headers=YAML)
    assert_problem(response, 404)
    assert ctx.asked_files == []  # the context never saw the name
    assert ctx.written == []


def test_put_replaces_a_file_and_reloads() -> None:
    ctx = FakeContext()
    response = client(ctx).put("/policies/trunks.yaml", content=NEW_TRUNKS, headers=YAML)
    assert response.status_code == 200
    assert response.json() == {
        "at": 1_700_000_100.0,
        "applied": True,
        "issues": [],
        "applied_count": 3,
        "refused_count": 1,
    }
    assert ctx.written == [("trunks.yaml", NEW_TRUNKS)]


@pytest.mark.parametrize(
    "content_type", ["text/plain; charset=utf-8", "application/x-yaml", "text/yaml"]
)
def test_put_accepts_the_yaml_media_types(content_type: str) -> None:
    ctx = FakeContext()
    response = client(ctx).put(
        "/policies/routes.yaml", content=ROUTES_YAML, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200
    assert ctx.written == [("routes.yaml", ROUTES_YAML)]


def test_put_of_an_invalid_file_is_422_with_the_issues_and_nothing_written() -> None:
    ctx = FakeContext()
    response = client(ctx).put("/policies/trunks.yaml", content=f"{BAD_MARK}: 1\n", headers=YAML)
    body = assert_problem(response, 422)
    assert body["issues"] == [f"trunks.yaml:2: {BAD_MARK} is not a field"]
    assert "running policy stays" in body["detail"]
    assert ctx.written == []
    assert ctx.files["trunks.yaml"] == TRUNKS_YAML


@pytest.mark.parametrize("headers", [{"Content-Type": "application/json"}, {}])
def test_put_needs_a_yaml_media_type(headers: dict[str, str]) -> None:
    ctx = FakeContext()
    response = client(ctx).put("/policies/trunks.yaml", content=NEW_TRUNKS, headers=headers)
    assert_problem(response, 415)
    assert ctx.written == []


def test_put_of_a_huge_file_is_413() -> None:
    ctx = FakeContext()
    huge = "#" * (MAX_POLICY_BYTES + 1)
    response = client(ctx).put("/policies/trunks.yaml", content=huge, headers=YAML)
    assert_problem(response, 413)
    assert ctx.written == []


def test_put_of_a_huge_file_without_content_length_is_413() -> None:
    ctx = FakeContext()

    def chunks() -> object:
        for _ in range(MAX_POLICY_BYTES // 4096 + 2):
            yield b"#" * 4096

    response = client(ctx).put("/policies/trunks.yaml", content=chunks(), headers=YAML)
    assert_problem(response, 413)
    assert ctx.written == []


def test_put_of_non_utf8_is_400() -> None:
    ctx = FakeContext()
    response = client(ctx).put("/policies/trunks.yaml", content=b"name: \xff\xfe\n", headers=YAML)
    assert "UTF-8" in assert_problem(response, 400)["detail"]
    assert ctx.written == []


def test_validate_is_a_dry_run() -> None:
    ctx = FakeContext()
    api = client(ctx)
    good = api.post("/policies/validate", json={"file": "trunks.yaml", "content": NEW_TRUNKS})
    assert good.json() == {"valid": True, "issues": []}
    bad = api.post("/policies/validate", json={"file": "routes.yaml", "content": BAD_MARK})
    assert bad.status_code == 200
    assert bad.json() == {"valid": False, "issues": [f"routes.yaml:2: {BAD_MARK} is not a field"]}
    assert ctx.written == []
    assert ctx.files["trunks.yaml"] == TRUNKS_YAML


def test_validate_of_an_unknown_file_is_404() -> None:
    ctx = FakeContext()
    response = client(ctx).post(
        "/policies/validate", json={"file": "../etc/passwd", "content": "x"}
    )
    assert_problem(response, 404)
    assert ctx.asked_files == []


@pytest.mark.parametrize(
    ("payload", "issue"),
    [
        ({"content": "x"}, "body.file: Field required"),
        ({"file": "trunks.yaml", "content": "x", "extra": 1}, "body.extra: Extra inputs"),
        ({"file": "trunks.yaml", "content": 5}, "body.content: Input should be a valid string"),
    ],
)
def test_validate_with_a_bad_body_is_422_naming_the_field(
    payload: dict[str, object], issue: str
) -> None:
    body = assert_problem(client().post("/policies/validate", json=payload), 422)
    assert any(found.startswith(issue) for found in body["issues"]), body["issues"]


def test_malformed_json_is_400() -> None:
    response = client().post(
        "/policies/validate", content=b'{"file": ', headers={"Content-Type": "application/json"}
    )
    assert assert_problem(response, 400)["detail"] == "the body is not valid JSON"


# --- route resolution -----------------------------------------------------------------

RESOLUTION = Resolution(
    trunk="carrier",
    screening="allow",
    route="to-pbx",
    action="route",
    trunks=("pbx", "pbx-backup"),
    trunks_down=("pbx-backup",),
    translated_user="+12125550123",
    inbound_rules=("strip-privacy",),
    outbound_rules=("add-pai",),
    limits={"trunk:carrier": "3/10 calls, 5.0 cps"},
)
WHAT_IF = {
    "method": "invite",
    "source": "127.0.0.10",
    "interface": "external",
    "request_uri": "sip:2125550123@127.0.0.1",
    "from_uri": "sip:+13105550199@127.0.0.10",
    "headers": {"P-Asserted-Identity": "<sip:+13105550199@127.0.0.10>"},
}


def test_resolve_answers_what_a_call_would_meet() -> None:
    ctx = FakeContext(resolution=RESOLUTION)
    response = client(ctx).post("/routes/resolve", json=WHAT_IF)
    assert response.status_code == 200
    assert response.json() == {
        "trunk": "carrier",
        "screening": "allow",
        "route": "to-pbx",
        "action": "route",
        "trunks": ["pbx", "pbx-backup"],
        "trunks_down": ["pbx-backup"],
        "translated_user": "+12125550123",
        "inbound_rules": ["strip-privacy"],
        "outbound_rules": ["add-pai"],
        "limits": {"trunk:carrier": "3/10 calls, 5.0 cps"},
    }
    assert ctx.resolved == [{**WHAT_IF, "method": "INVITE"}]


def test_resolve_defaults_to_invite_and_canonical_addresses() -> None:
    ctx = FakeContext(resolution=RESOLUTION)
    what_if = {key: value for key, value in WHAT_IF.items() if key not in ("method", "headers")}
    what_if["source"] = "2001:DB8::0001"
    assert client(ctx).post("/routes/resolve", json=what_if).status_code == 200
    assert ctx.resolved[0]["method"] == "INVITE"
    assert ctx.resolved[0]["source"] == "2001:db8::1"
    assert ctx.resolved[0]["headers"] == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": "not-an-ip"}, "body.source"),
        ({"source": "127.0.0.10:5060"}, "body.source"),
        ({"request_uri": "http://example.com"}, "body.request_uri"),
        ({"from_uri": "sip:"}, "body.from_uri"),
        ({"method": "IN VITE"}, "body.method"),
        ({"interface": ""}, "body.interface"),
        ({"headers": {"Bad Header": "x"}}, "body.headers"),
    ],
)
def test_resolve_refuses_malformed_input(change: dict[str, object], field: str) -> None:
    ctx = FakeContext(resolution=RESOLUTION)
    body = assert_problem(client(ctx).post("/routes/resolve", json={**WHAT_IF, **change}), 422)
    assert any(issue.startswith(field) for issue in body["issues"]), body["issues"]
    assert ctx.resolved == []


def test_resolve_turns_a_context_refusal_into_a_422() -> None:
    ctx = FakeContext(resolution=None)  # the fake raises ValueError
    body = assert_problem(client(ctx).post("/routes/resolve", json=WHAT_IF), 422)
    assert body["detail"] == "cannot resolve: unknown interface 'external'"
