"""The admin plane against a running SBC with real SIPp calls: what the API
reports, what DELETE does to both far ends, metrics and CDRs afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import CARRIER_IP, PBX_IP, SbcProcess, Sipp

TOKEN = "s3cret-admin-token-for-the-live-tests"  # 32+ characters
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def sbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SbcProcess]:
    process = SbcProcess(tmp_path_factory.mktemp("sbc-admin"), admin_token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def api(sbc: SbcProcess) -> httpx.Client:
    return httpx.Client(base_url=sbc.admin_url, headers=AUTH, timeout=5.0)


def metric(text: str, name: str) -> float:
    """The value of one sample line (``name`` includes its labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_auth_is_required_everywhere_but_health(sbc: SbcProcess) -> None:
    with httpx.Client(base_url=sbc.admin_url, timeout=5.0) as plain:
        assert plain.get("/health").status_code == 200
        assert plain.get("/calls").status_code == 401
        wrong = plain.get("/calls", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
    with api(sbc) as client:
        assert client.get("/calls").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text


def test_a_live_call_listed_hung_up_counted_and_recorded(sbc: SbcProcess, tmp_path: Path) -> None:
    with api(sbc) as client:
        before = client.get("/metrics").text
        callee = Sipp(
            "uas_basic",
            local_ip=PBX_IP,
            local_port=sbc.ports.pbx,
            timeout_s=30,
            workdir=tmp_path,
            name="callee",
        ).start()
        caller = Sipp(
            "uac_callee_bye",
            local_ip=CARRIER_IP,
            remote=sbc.ext_uri,
            timeout_s=30,
            workdir=tmp_path,
            name="caller",
        ).start()
        try:
            wait_for(lambda: client.get("/calls").json()["total"] == 1)
            listed = client.get("/calls").json()["items"][0]
            call_id = listed["id"]
            wait_for(lambda: client.get(f"/calls/{call_id}").json()["state"] == "CONFIRMED")
            call = client.get(f"/calls/{call_id}").json()
            assert call["a"]["trunk"] == "carrier"
            assert call["b"]["trunk"] == "pbx"
            assert call["a"]["call_id"] != call["b"]["call_id"]
            assert call["a"]["local_tag"]
            assert call["b"]["remote_tag"]
            assert client.delete(f"/calls/{call_id}").status_code == 202
            caller_result = caller.wait(20)
            callee_result = callee.wait(20)
        finally:
            caller.stop()
            callee.stop()
        # Both far ends got the BYE and answered it.
        assert caller_result.requests("BYE", "received"), caller_result.describe()
        assert callee_result.requests("BYE", "received"), callee_result.describe()
        assert caller_result.ok, caller_result.describe()
        assert callee_result.ok, callee_result.describe()
        a_call_id = caller_result.requests("INVITE", "sent")[0].call_id
        assert call["a"]["call_id"] == a_call_id
        wait_for(lambda: client.get("/calls").json()["total"] == 0)

        after = client.get("/metrics").text
        started = "sbc_calls_started_total"
        assert metric(after, started) == metric(before, started) + 1
        answered = 'sbc_calls_completed_total{disposition="answered"}'
        assert metric(after, answered) == metric(before, answered) + 1

        def recorded() -> bool:
            rows = client.get("/cdrs", params={"trunk": "carrier"}).json()["items"]
            return any(row["id"] == call_id and row["end"] is not None for row in rows)

        wait_for(recorded)
        rows = client.get("/cdrs", params={"trunk": "carrier"}).json()["items"]
        row = next(r for r in rows if r["id"] == call_id)
        assert row["disposition"] == "answered"
        assert row["hangup_by"] == "sbc"
        assert row["a_call_id"] == a_call_id
        assert row["egress_trunk"] == "pbx"
        csv = client.get("/cdrs.csv", params={"trunk": "carrier"})
        assert csv.status_code == 200
        assert call_id in csv.text


def test_no_token_on_a_public_address_refuses_to_start(tmp_path: Path) -> None:
    process = SbcProcess(tmp_path / "open", admin_address="0.0.0.0")  # every address
    with pytest.raises(RuntimeError, match="exited early rc=3"):
        process.start()
    log = process.stdout_path.read_text() + process.stderr_tail()
    assert "sbc.start_failed" in log
    assert "token" in log


def start_refused(process: SbcProcess) -> str:
    """Start ``process``, expect the start-failure exit status, return what it logged.
    An SBC that starts after all is stopped (by PID), not left behind."""
    try:
        with pytest.raises(RuntimeError, match="exited early rc=3"):
            process.start()
    finally:
        process.stop()
    log = process.stdout_path.read_text() + process.stderr_tail()
    assert "sbc.start_failed" in log
    return log


def test_a_short_token_refuses_to_start_without_printing_it(tmp_path: Path) -> None:
    short = "only-twenty-six-characters"
    log = start_refused(SbcProcess(tmp_path / "short", admin_token=short))
    assert "at least 32 characters" in log
    assert short not in log


def test_a_token_file_others_can_read_refuses_to_start(tmp_path: Path) -> None:
    process = SbcProcess(tmp_path / "exposed", admin_token=TOKEN)
    token_file = process.workdir / "admin.token"
    token_file.chmod(0o644)
    log = start_refused(process)
    assert f"chmod 600 {token_file}" in log
    assert TOKEN not in log


def test_wrong_tokens_are_throttled_per_address(sbc: SbcProcess) -> None:
    """An attacker on 127.0.0.66 is held after its burst; the operator on 127.0.0.1 is not."""
    attacker = httpx.Client(
        base_url=sbc.admin_url,
        timeout=5.0,
        transport=httpx.HTTPTransport(local_address="127.0.0.66"),
    )
    with attacker, api(sbc) as operator:
        wrong = {"Authorization": "Bearer " + "x" * 40}
        statuses = [attacker.get("/calls", headers=wrong).status_code for _ in range(10)]
        assert statuses == [401] * 10
        held = attacker.get("/calls", headers=wrong)
        assert held.status_code == 429
        assert int(held.headers["retry-after"]) >= 1
        assert attacker.get("/calls", headers=AUTH).status_code == 429  # the token is not tried
        assert operator.get("/calls").status_code == 200
