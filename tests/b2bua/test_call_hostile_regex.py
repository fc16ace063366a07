"""A called number crafted against a backtracking regex costs the core nothing:
the operator's route and manipulation regexes run on RE2 (linear time)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from peers import POLICIES, Net

from sbc.policy import load_policy

EVIL = r"^(a+)+$"  # 2^n backtracking steps in re on a+b
HOSTILE_USER = "a" * 22 + "b"

ROUTES = f"""\
routes:
  - name: evil
    from_trunk: pbx
    ruri_regex: '{EVIL}'
    from_regex: '{EVIL}'
    to: [carrier]
  - name: out
    from_trunk: pbx
    translate: {{regex: '{EVIL}', replacement: 'never'}}
    to: [carrier]
  - name: in
    from_trunk: carrier
    to: [pbx]
"""

MANIPULATIONS = f"""\
manipulations:
  - trunk: pbx
    direction: inbound
    rules:
      - rewrite_user: {{target: ruri, regex: '{EVIL}', replacement: 'never'}}
      - header_matches: {{header: To, regex: '{EVIL}'}}
        add: {{header: X-Never, value: '1'}}
"""


def cpu_seconds(work: Callable[[], object]) -> float:
    start = time.thread_time()
    work()
    return time.thread_time() - start


def test_a_hostile_called_number_is_routed_in_linear_time(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "routes.yaml").write_text(ROUTES)
    (directory / "manipulations.yaml").write_text(MANIPULATIONS)
    net = Net(load_policy(directory))

    def route_one_call() -> None:
        net.pbx.invite(HOSTILE_USER)
        sent = net.carrier.take_request("INVITE")
        assert sent.uri.user == HOSTILE_USER  # type: ignore[union-attr]  # nothing matched
        assert sent.headers.get("X-Never") is None

    # The whole INVITE through the core, against one search by re, in the same run.
    under_sbc = cpu_seconds(route_one_call)
    with_re = cpu_seconds(lambda: re.search(EVIL, HOSTILE_USER))
    assert with_re > 10 * under_sbc
