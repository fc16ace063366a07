"""``sbc check`` and ``sbc run`` as an operator (or CI) calls them."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from policy_samples import ROUTES, WritePolicy

from sbc import cli
from sbc.policy import Policy

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "policies"


def test_check_shipped_policies_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(SHIPPED)]) == 0
    summary = "2 interfaces, 2 trunks, 3 routes, 15 manipulation rules"
    assert capsys.readouterr().out == f"{SHIPPED}: OK ({summary})\n"


def test_check_reports_every_issue_on_stderr(
    write_policy: WritePolicy, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_policy(routes=ROUTES.replace("[pbx]", "[pbx, nope]"), sbc="sip: {t9: 1}\n")
    assert cli.main(["check", str(directory)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "routes.yaml:4: routes[0].to[1]: unknown trunk 'nope' (known: carrier, pbx)",
        "sbc.yaml:1: sip.t9: Extra inputs are not permitted",
    ]


def test_python_dash_m_sbc_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sbc", "check", "policies"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (
        0,
        "policies: OK (2 interfaces, 2 trunks, 3 routes, 15 manipulation rules)\n",
    )


def test_run_refuses_bad_policy_with_exit_2(
    write_policy: WritePolicy, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_policy(trunks=None)
    assert cli.main(["run", "--policies", str(directory)]) == 2
    assert capsys.readouterr().err == "trunks.yaml:0: file not found\n"


def test_run_hands_policy_to_app(
    write_policy: WritePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Policy, Path]] = []
    fake = types.ModuleType("sbc.app")
    fake.run = lambda policy, directory: calls.append((policy, directory))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sbc.app", fake)
    directory = write_policy()
    assert cli.main(["run", "--policies", str(directory)]) == 0
    [(policy, given)] = calls
    assert (given, sorted(policy.trunks)) == (directory, ["carrier", "pbx"])


def test_default_policy_dir_prefers_cwd(tmp_path: Path) -> None:
    assert cli.default_policy_dir(tmp_path) == SHIPPED
    (tmp_path / "policies").mkdir()
    assert cli.default_policy_dir(tmp_path) == tmp_path / "policies"
