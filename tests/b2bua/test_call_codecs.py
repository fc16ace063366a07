"""A trunk's ``codecs:`` policy reaches the media layer: what the far end is offered,
and a call that would need transcoding on a node without capacity is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import Net, NoRelay, policy_copy

from sbc.b2bua.policy_values import codec_policy
from sbc.media.anchor import MediaAnchor
from sbc.media.interface import CodecPolicy
from sbc.media.ports import PortPool
from sbc.media.transcode import TranscodePool
from sbc.policy import PolicyError, load_policy
from sbc.policy.schema import TrunkCodecs


def net_with(tmp_path: Path, pbx_codecs: str, capacity: int) -> Net:
    net = Net(load_policy(policy_copy(tmp_path, pbx_lines=f"    codecs: {pbx_codecs}\n")))
    net.core.media = MediaAnchor(NoRelay(), PortPool(), transcoding=TranscodePool(capacity))
    return net


def test_the_pbx_is_offered_only_what_its_trunk_allows(tmp_path: Path) -> None:
    net = net_with(tmp_path, "{allow: [OPUS], prefer: [opus], transcode: true, ptime: 20}", 5)
    net.carrier.invite("1000")  # offers PCMU, PCMA and telephone-event
    body = net.pbx.take_request("INVITE").body.decode()
    assert "m=audio" in body
    assert " RTP/AVP 96 101\r\n" in body
    assert "a=rtpmap:96 opus/48000/2" in body
    assert "a=ptime:20" in body
    assert "PCMU" not in body


def test_no_transcoding_capacity_refuses_before_any_b_leg(tmp_path: Path) -> None:
    net = net_with(tmp_path, "{allow: [opus], transcode: true}", 0)
    net.carrier.invite("1000")
    assert net.carrier.take_response(488, "INVITE")
    assert not net.pbx.requests("INVITE")


def test_codec_names_are_case_insensitive_and_prefer_must_be_allowed(tmp_path: Path) -> None:
    spec = TrunkCodecs.model_validate({"allow": ["PCMA", "Opus"], "strip": ["G729"]})
    assert codec_policy(spec) == CodecPolicy(allow=("pcma", "opus"), strip=frozenset({"g729"}))
    assert codec_policy(None) is None
    with pytest.raises(PolicyError) as caught:
        load_policy(
            policy_copy(tmp_path, pbx_lines="    codecs: {allow: [PCMA], prefer: [opus]}\n")
        )
    assert any("preferred codec opus is not in allow" in str(i) for i in caught.value.issues)
    assert any(str(i).startswith("trunks.yaml:") for i in caught.value.issues)
