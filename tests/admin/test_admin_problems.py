"""Errors as RFC 9457 problem details, and an OpenAPI document that lists every route."""

from __future__ import annotations

from typing import Any

from admin_fakes import OPERATIONS, TOKEN, FakeContext, assert_problem, client

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def test_unknown_route_is_a_404_problem() -> None:
    response = client().get("/nowhere")
    body = assert_problem(response, 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "nothing at /nowhere",
    }


def test_wrong_method_is_a_405_problem_with_allow() -> None:
    response = client().post("/trunks")
    body = assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"
    assert response.headers["allow"] == "GET"


def test_an_exception_in_the_context_is_a_500_problem_without_internals() -> None:
    response = client(FakeContext(fail_calls=True)).get("/calls")
    body = assert_problem(response, 500)
    assert "secret internal detail" not in response.text
    assert "RuntimeError" not in response.text
    assert body["detail"] == "internal error; see the SBC's log"


def test_validation_problem_lists_every_issue() -> None:
    body = assert_problem(client().get("/calls", params={"limit": 0, "offset": -1}), 422)
    assert body["detail"] == "the request does not match the schema"
    assert sorted(issue.split(":")[0] for issue in body["issues"]) == [
        "query.limit",
        "query.offset",
    ]


# --- OpenAPI --------------------------------------------------------------------------


def openapi() -> dict[str, Any]:
    response = client().get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def test_openapi_lists_every_route() -> None:
    listed = set(operations(openapi()))
    expected = {
        (method, path.replace("call-1", "{call_id}").replace("192.0.2.66", "{source}"))
        for method, path in OPERATIONS
        if path != "/openapi.json"
    }
    expected = {
        (method, "/policies/{file}" if path == "/policies/trunks.yaml" else path)
        for method, path in expected
    }
    assert listed == expected | {("GET", "/health")}


def response_schema(operation: dict[str, Any], status: str, media: str) -> Any:
    return operation["responses"][status]["content"][media]["schema"]


def test_openapi_names_the_models() -> None:
    schema = openapi()
    ops = operations(schema)
    json = "application/json"
    expected = {
        ("GET", "/health"): "Health",
        ("GET", "/ready"): "ReadinessReport",
        ("GET", "/calls"): "CallPage",
        ("GET", "/calls/{call_id}"): "Call",
        ("DELETE", "/calls/{call_id}"): "HangupAccepted",
        ("GET", "/policies"): "PolicyIndex",
        ("GET", "/policies/{file}"): "PolicyFile",
        ("PUT", "/policies/{file}"): "ReloadReport",
        ("POST", "/policies/validate"): "ValidationReport",
        ("POST", "/routes/resolve"): "RouteResolution",
        ("GET", "/cdrs"): "CdrPage",
    }
    for key, model in expected.items():
        status = "202" if key[0] == "DELETE" else "200"
        assert response_schema(ops[key], status, json) == {
            "$ref": f"#/components/schemas/{model}"
        }, key
    assert response_schema(ops["GET", "/trunks"], "200", json)["items"] == {
        "$ref": "#/components/schemas/Trunk"
    }
    assert response_schema(ops["GET", "/bans"], "200", json)["items"] == {
        "$ref": "#/components/schemas/BanEntry"
    }
    assert "text/csv" in ops["GET", "/cdrs.csv"]["responses"]["200"]["content"]
    assert "application/yaml" in ops["PUT", "/policies/{file}"]["requestBody"]["content"]
    validate_body = ops["POST", "/policies/validate"]["requestBody"]["content"][json]["schema"]
    assert validate_body == {"$ref": "#/components/schemas/PolicyDraft"}
    components = schema["components"]["schemas"]
    assert {"Cdr", "Leg", "MediaReport", "Problem", "RouteQuery"} <= set(components)
    assert "HTTPValidationError" not in components


def test_openapi_errors_are_problem_json_and_auth_is_declared() -> None:
    schema = openapi()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    for key, operation in operations(schema).items():
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and key != ("GET", "/ready"):
                assert set(response["content"]) == {"application/problem+json"}, (key, status)
                assert response_schema(operation, status, "application/problem+json") == (
                    PROBLEM_REF
                )
        if key == ("GET", "/health"):
            assert operation["security"] == []
            assert "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"bearer": []}], key
            assert "401" in operation["responses"], key


def test_no_response_model_carries_a_secret() -> None:
    schema = openapi()
    properties = {
        name.lower()
        for model in schema["components"]["schemas"].values()
        for name in model.get("properties", {})
    }
    assert not {name for name in properties if "password" in name or "secret" in name}
    assert TOKEN not in str(schema)
