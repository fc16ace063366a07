"""Trunk DTMF fields: defaults, accepted values, and errors at their line."""

from __future__ import annotations

import pytest
from policy_samples import TRUNKS, WritePolicy

from sbc.policy import PolicyError, load_policy


def test_defaults_are_rfc4733_and_dtmf_relay(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy())
    pbx = policy.trunks["pbx"]
    assert (pbx.dtmf, pbx.dtmf_info) == ("rfc4733", "dtmf-relay")


def test_info_trunk_with_bare_digit_bodies(write_policy: WritePolicy) -> None:
    trunks = TRUNKS + "    dtmf: info\n    dtmf_info: dtmf\n"
    policy = load_policy(write_policy(trunks=trunks))
    assert (policy.trunks["pbx"].dtmf, policy.trunks["pbx"].dtmf_info) == ("info", "dtmf")
    assert policy.trunks["carrier"].dtmf == "rfc4733"


def test_unknown_modes_are_errors_at_their_line(write_policy: WritePolicy) -> None:
    trunks = TRUNKS + "    dtmf: inband\n    dtmf_info: cisco\n"
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(trunks=trunks))
    assert [str(issue) for issue in caught.value.issues] == [
        "trunks.yaml:8: trunks[1].dtmf: Input should be 'rfc4733' or 'info'",
        "trunks.yaml:9: trunks[1].dtmf_info: Input should be 'dtmf-relay' or 'dtmf'",
    ]
