"""Trunk policy ``srtp_keying: dtls``: the SBC offers DTLS-SRTP to that trunk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peers import POLICIES, Net

from sbc.media.anchor import MediaAnchor
from sbc.media.control import StreamSpec, StreamStats
from sbc.media.ports import PortPool
from sbc.policy import PolicyError, load_policy


class NoRelay:
    def update(self, stream: StreamSpec) -> None:
        pass

    def remove(self, session: str, index: int) -> None:
        pass

    def delete(self, session: str) -> None:
        pass

    def stats(self, session: str) -> list[StreamStats]:
        return []


def policies(tmp_path: Path, pbx_lines: str) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "trunks.yaml").write_text(
        "trunks:\n"
        "  - name: carrier\n    interface: external\n    address: 127.0.0.10\n"
        "  - name: pbx\n    interface: internal\n    address: 127.0.0.20\n" + pbx_lines
    )
    return directory


def test_a_dtls_keyed_trunk_is_offered_dtls_srtp(tmp_path: Path) -> None:
    directory = policies(tmp_path, "    srtp: required\n    srtp_keying: dtls\n")
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
    directory = policies(tmp_path, "    srtp: required\n    srtp_keying: zrtp\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert "srtp_keying" in str(caught.value)
    assert "trunks.yaml" in str(caught.value)
