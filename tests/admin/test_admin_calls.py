"""Health, readiness, metrics, active calls and trunks."""

from __future__ import annotations

import pytest
from admin_fakes import FakeContext, assert_problem, call, client, trunk

from sbc.admin.context import Readiness


def test_ready_when_everything_is_up() -> None:
    response = client().get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "listeners": True,
        "policy_loaded": True,
        "media_workers_alive": True,
    }


def test_not_ready_is_503_naming_what_is_missing() -> None:
    ctx = FakeContext(
        ready=Readiness(listeners=True, policy_loaded=True, media_workers_alive=False)
    )
    response = client(ctx).get("/ready")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert response.json()["media_workers_alive"] is False


def test_metrics_pass_through_body_and_content_type() -> None:
    exposition = b"# TYPE sbc_calls_started_total counter\nsbc_calls_started_total 7.0\n"
    content_type = "text/plain; version=0.0.4; charset=utf-8"
    response = client(metrics=lambda: (exposition, content_type)).get("/metrics")
    assert response.status_code == 200
    assert response.content == exposition
    assert response.headers["content-type"] == content_type


def test_metrics_without_a_source_is_a_503_problem() -> None:
    body = assert_problem(client().get("/metrics"), 503)
    assert body["detail"] == "metrics are not enabled"


# --- calls ----------------------------------------------------------------------------


def many_calls() -> FakeContext:
    views = [call(1), call(2, state="EARLY"), call(3, a_trunk="pbx", b_trunk="carrier")]
    views += [call(4, a_trunk="other", b_trunk="backup", state="CALLING")]
    return FakeContext(active={view.id: view for view in views})


def ids(response_json: dict[str, object]) -> list[str]:
    items = response_json["items"]
    assert isinstance(items, list)
    return [item["id"] for item in items]


def test_calls_are_listed_newest_first_with_both_legs() -> None:
    body = client(many_calls()).get("/calls").json()
    assert ids(body) == ["call-4", "call-3", "call-2", "call-1"]
    assert body["total"] == 4
    first = body["items"][3]
    assert first["a"]["call_id"] == "a-1@192.0.2.10"
    assert first["a"]["local_tag"] == "lt-a-1@192.0.2.10"
    assert first["b"]["call_id"] == "b2b-1"
    assert first["b"]["interface"] == "internal"
    assert first["codecs"] == ["PCMU/8000", "telephone-event/8000"]
    assert first["media"] == {"packets": 100.0, "lost": 1.0}
    assert first["answered"] == first["started"] + 1


def test_calls_filter_by_trunk_on_either_leg_and_by_state() -> None:
    api = client(many_calls())
    assert ids(api.get("/calls", params={"trunk": "carrier"}).json()) == [
        "call-3",
        "call-2",
        "call-1",
    ]
    assert ids(api.get("/calls", params={"trunk": "backup"}).json()) == ["call-4"]
    assert ids(api.get("/calls", params={"state": "EARLY"}).json()) == ["call-2"]
    both = api.get("/calls", params={"trunk": "carrier", "state": "CONFIRMED"}).json()
    assert ids(both) == ["call-3", "call-1"]
    assert both["total"] == 2


def test_calls_paginate() -> None:
    api = client(many_calls())
    page = api.get("/calls", params={"limit": 2, "offset": 1}).json()
    assert ids(page) == ["call-3", "call-2"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert ids(api.get("/calls", params={"limit": 2, "offset": 4}).json()) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"state": "RINGING"}, "query.state"),
        ({"limit": "many"}, "query.limit"),
    ],
)
def test_bad_call_query_is_a_422_problem_naming_the_field(
    params: dict[str, object], field: str
) -> None:
    body = assert_problem(client(many_calls()).get("/calls", params=params), 422)
    assert len(body["issues"]) == 1
    assert body["issues"][0].startswith(f"{field}: ")


def test_one_call_and_unknown_call() -> None:
    api = client(many_calls())
    body = api.get("/calls/call-2").json()
    assert body["id"] == "call-2"
    assert body["state"] == "EARLY"
    assert body["answered"] is None
    problem = assert_problem(api.get("/calls/call-9"), 404)
    assert "call-9" in problem["detail"]


def test_hang_up_asks_the_context_and_answers_202() -> None:
    ctx = many_calls()
    response = client(ctx).delete("/calls/call-2")
    assert response.status_code == 202
    assert response.json() == {"id": "call-2", "state": "hanging up"}
    assert ctx.hung_up == ["call-2"]


def test_hang_up_of_an_unknown_call_is_404() -> None:
    ctx = many_calls()
    assert_problem(client(ctx).delete("/calls/call-9"), 404)
    assert ctx.hung_up == []


# --- trunks ---------------------------------------------------------------------------


def test_trunks_show_liveness_and_load() -> None:
    ctx = FakeContext(
        trunk_views=[trunk("carrier", active=5, max_calls=20), trunk("pbx", active=3, up=False)]
    )
    carrier, pbx = client(ctx).get("/trunks").json()
    assert carrier["name"] == "carrier"
    assert carrier["up"] is True
    assert carrier["last_probe_status"] == 200
    assert (carrier["active_calls"], carrier["max_calls"], carrier["load"]) == (5, 20, 0.25)
    assert pbx["up"] is False
    assert pbx["load"] is None  # unlimited
    assert set(carrier) == {
        "name",
        "interface",
        "address",
        "port",
        "transport",
        "up",
        "probed",
        "last_probe_status",
        "active_calls",
        "max_calls",
        "max_cps",
        "load",
    }


def test_registrations_are_listed() -> None:
    from admin_fakes import TOKEN, FakeContext

    from sbc.admin.api import create_app
    from sbc.admin.context import RegistrationView

    ctx = FakeContext()
    ctx.registration_list.append(
        RegistrationView(
            "trunk", "carrier", "registered", "<sip:sbc@127.0.0.1>", None, 90.0, 200, None
        )
    )
    from fastapi.testclient import TestClient

    client = TestClient(create_app(ctx, token=TOKEN))
    assert client.get("/registrations").status_code == 401
    got = client.get("/registrations", headers={"Authorization": f"Bearer {TOKEN}"})
    assert got.status_code == 200
    assert got.json() == [
        {
            "kind": "trunk",
            "name": "carrier",
            "state": "registered",
            "contact": "<sip:sbc@127.0.0.1>",
            "source": None,
            "expires_in": 90.0,
            "last_status": 200,
            "last_error": None,
        }
    ]
