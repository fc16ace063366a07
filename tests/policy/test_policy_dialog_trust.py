"""Trunk in-dialog trust fields: safe defaults, and errors at their line."""

from __future__ import annotations

import pytest
from policy_samples import TRUNKS, WritePolicy

from sbc.policy import PolicyError, load_policy


def test_defaults_trust_only_the_peers_own_addresses(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy())
    for trunk in policy.trunks.values():
        assert (trunk.peer_may_move, trunk.trust_route) == (False, False)


def test_both_can_be_lifted_per_trunk(write_policy: WritePolicy) -> None:
    trunks = TRUNKS + "    peer_may_move: true\n    trust_route: true\n"
    policy = load_policy(write_policy(trunks=trunks))
    assert (policy.trunks["pbx"].peer_may_move, policy.trunks["pbx"].trust_route) == (True, True)
    assert policy.trunks["carrier"].peer_may_move is False


def test_non_booleans_are_errors_at_their_line(write_policy: WritePolicy) -> None:
    trunks = TRUNKS + '    peer_may_move: "yes"\n    trust_route: 1\n'
    with pytest.raises(PolicyError) as caught:
        load_policy(write_policy(trunks=trunks))
    assert [str(issue) for issue in caught.value.issues] == [
        "trunks.yaml:8: trunks[1].peer_may_move: Input should be a valid boolean",
        "trunks.yaml:9: trunks[1].trust_route: Input should be a valid boolean",
    ]


def test_a_trunk_owns_its_address_and_sources(write_policy: WritePolicy) -> None:
    trunks = TRUNKS + "    sources: [192.0.2.0/24]\n"
    pbx = load_policy(write_policy(trunks=trunks)).trunks["pbx"]
    assert pbx.owns_address(pbx.address)
    assert pbx.owns_address("192.0.2.77")
    assert not pbx.owns_address("198.51.100.1")
    assert not pbx.owns_address("not-an-ip")
