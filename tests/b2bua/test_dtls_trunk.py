"""Trunk policy ``srtp_keying: dtls``: the SBC offers DTLS-SRTP to that trunk."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import Net, NoRelay, policy_copy

from sbc.media.anchor import MediaAnchor
from sbc.media.ports import PortPool
from sbc.policy import PolicyError, load_policy


def test_a_dtls_keyed_trunk_is_offered_dtls_srtp(tmp_path: Path) -> None:
    directory = policy_copy(tmp_path, pbx_lines="    srtp: required\n    srtp_keying: dtls\n")
    net = Net(load_policy(directory))
    anchor = MediaAnchor(NoRelay(), PortPool())
    net.core.media = anchor
    net.carrier.invite("1000")
    body = net.pbx.take_request("INVITE").body.decode()
    assert "UDP/TLS/RTP/SAVP" in body
    assert f"a=fingerprint:sha-256 {anchor.fingerprint}" in body
    assert "a=setup:actpass" in body
    assert "a=crypto:" not in body


def test_an_unknown_keying_is_a_policy_error(tmp_path: Path) -> None:
    directory = policy_copy(tmp_path, pbx_lines="    srtp: required\n    srtp_keying: zrtp\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert "srtp_keying" in str(caught.value)
    assert "trunks.yaml" in str(caught.value)
