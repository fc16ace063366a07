"""SDP: byte-exact round trips, structured access, rewrites, errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbc.sip.sdp import (
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    parse_sdp,
)

SIPP_UAC = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

WEBRTC_OFFER = (
    b"v=0\r\n"
    b"o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"t=0 0\r\n"
    b"a=group:BUNDLE 0 1\r\n"
    b"a=extmap-allow-mixed\r\n"
    b"a=msid-semantic: WMS stream1\r\n"
    b"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"a=rtcp:9 IN IP4 0.0.0.0\r\n"
    b"a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0\r\n"
    b"a=ice-ufrag:Oyef7uvBlwafI3hT\r\n"
    b"a=ice-pwd:T0teqPLNQQOf+5W+ls+P2p16\r\n"
    b"a=ice-options:trickle\r\n"
    b"a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:"
    b"7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n"
    b"a=setup:actpass\r\n"
    b"a=mid:0\r\n"
    b"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    b"a=sendrecv\r\n"
    b"a=msid:stream1 audio1\r\n"
    b"a=rtcp-mux\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=rtcp-fb:111 transport-cc\r\n"
    b"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    b"a=rtpmap:63 red/48000/2\r\n"
    b"a=fmtp:63 111/111\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:13 CN/8000\r\n"
    b"a=rtpmap:110 telephone-event/48000\r\n"
    b"a=rtpmap:126 telephone-event/8000\r\n"
    b"a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\r\n"
    b"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n"
    b"c=IN IP4 0.0.0.0\r\n"
    b"b=AS:2500\r\n"
    b"a=rtcp:9 IN IP4 0.0.0.0\r\n"
    b"a=ice-ufrag:Oyef7uvBlwafI3hT\r\n"
    b"a=ice-pwd:T0teqPLNQQOf+5W+ls+P2p16\r\n"
    b"a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:"
    b"7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n"
    b"a=setup:actpass\r\n"
    b"a=mid:1\r\n"
    b"a=recvonly\r\n"
    b"a=rtcp-mux\r\n"
    b"a=rtcp-rsize\r\n"
    b"a=rtpmap:96 VP8/90000\r\n"
    b"a=rtcp-fb:96 nack pli\r\n"
    b"a=rtpmap:97 rtx/90000\r\n"
    b"a=fmtp:97 apt=96\r\n"
)

HOLD_OFFER = (  # RFC 3264 §8.4 old-style hold, LF line endings as some UAs send
    b"v=0\n"
    b"o=alice 2890844526 2890844527 IN IP4 host.example.com\n"
    b"s=\n"
    b"c=IN IP4 0.0.0.0\n"
    b"t=0 0\n"
    b"a=sendonly\n"
    b"m=audio 49170 RTP/AVP 0 101\n"
    b"a=rtpmap:0 PCMU/8000\n"
    b"a=rtpmap:101 telephone-event/8000\n"
    b"a=fmtp:101 0-15\n"
    b"a=ptime:20"  # no final line ending
)

REJECTED_STREAM = (
    b"v=0\r\n"
    b"o=bob 2808844564 2808844565 IN IP6 2001:db8::2\r\n"
    b"s=session\r\n"
    b"i=An answer rejecting video\r\n"
    b"c=IN IP6 2001:db8::2\r\n"
    b"b=CT:128\r\n"
    b"t=3034423619 3042462419\r\n"
    b"r=604800 3600 0 90000\r\n"
    b"z=2882844526 -1h 2898848070 0\r\n"
    b"y=unknown type, kept verbatim\r\n"
    b"m=audio 49920/2 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"m=video 0 RTP/AVP 31\r\n"
    b"\r\n"
)

SAMPLES = [SIPP_UAC, WEBRTC_OFFER, HOLD_OFFER, REJECTED_STREAM]


@pytest.mark.parametrize("data", SAMPLES)
def test_unchanged_sdp_round_trips_byte_for_byte(data: bytes) -> None:
    assert parse_sdp(data).serialize() == data


def test_structured_access_sipp() -> None:
    sdp = parse_sdp(SIPP_UAC)
    assert sdp.version == 0
    assert sdp.origin == Origin("user1", "53655765", 2353687637, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.port_count, audio.proto) == (
        "audio",
        6000,
        None,
        "RTP/AVP",
    )
    assert audio.formats == ["0"]
    assert audio.rtpmap == {"0": "PCMU/8000"}
    assert audio.direction == "sendrecv"
    assert not audio.rtcp_mux


def test_structured_access_webrtc() -> None:
    sdp = parse_sdp(WEBRTC_OFFER)
    assert sdp.attribute("group") == Attribute("group", "BUNDLE 0 1")
    audio, video = sdp.media
    assert audio.rtcp_mux
    assert video.rtcp_mux
    assert audio.rtpmap["111"] == "opus/48000/2"
    assert audio.fmtp["111"] == "minptime=10;useinbandfec=1"
    assert video.fmtp == {"97": "apt=96"}
    assert audio.direction == "sendrecv"
    assert video.direction == "recvonly"
    assert video.bandwidths[0].bandwidth == 2500
    assert audio.attribute_values("mid") == ["0"]
    assert [a.name for a in audio.attributes][:3] == ["rtcp", "candidate", "ice-ufrag"]


def test_hold_and_session_level_direction_fallback() -> None:
    sdp = parse_sdp(HOLD_OFFER)
    assert sdp.connection is not None
    assert sdp.connection.is_hold
    assert sdp.session_name == ""
    assert sdp.media[0].direction == "sendonly"  # from the session level
    assert sdp.media[0].own_direction is None


def test_rejected_stream_and_port_count() -> None:
    sdp = parse_sdp(REJECTED_STREAM)
    audio, video = sdp.media
    assert (audio.port, audio.port_count, audio.is_rejected) == (49920, 2, False)
    assert video.is_rejected
    assert [line.type for line in sdp.lines if hasattr(line, "type")] == [
        "i",
        "t",
        "r",
        "z",
        "y",
    ]


def test_media_anchoring_rewrite_touches_only_changed_lines() -> None:
    sdp = parse_sdp(WEBRTC_OFFER)
    sdp.origin.address = "203.0.113.1"
    sdp.origin.sess_version += 1
    audio = sdp.media[0]
    audio.port = 30000
    assert audio.connection is not None
    audio.connection.address = "203.0.113.1"
    audio.remove_attributes("candidate", "ice-ufrag", "ice-pwd")
    audio.set_direction("sendonly")
    out = sdp.serialize()
    assert b"o=- 4611731400430051336 3 IN IP4 203.0.113.1\r\n" in out
    assert b"m=audio 30000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n" in out
    assert b"a=candidate" not in out
    assert b"a=sendonly\r\na=msid:stream1 audio1\r\n" in out
    # the untouched video section is byte-identical
    video_at = WEBRTC_OFFER.index(b"m=video")
    assert out.endswith(WEBRTC_OFFER[video_at:])
    assert parse_sdp(out).media[0].direction == "sendonly"


def test_changed_lines_keep_their_line_ending_and_new_ones_use_crlf() -> None:
    sdp = parse_sdp(HOLD_OFFER)
    assert sdp.connection is not None
    sdp.connection.address = "192.0.2.9"
    sdp.media[0].add_attribute("rtcp-mux")
    out = sdp.serialize()
    assert b"c=IN IP4 192.0.2.9\n" in out
    assert out.endswith(b"a=ptime:20\r\na=rtcp-mux\r\n")


def test_connection_setter_inserts_before_time_and_attributes() -> None:
    sdp = parse_sdp(WEBRTC_OFFER)
    sdp.connection = Connection("IN", "IP4", "198.51.100.7")
    assert sdp.serialize().startswith(
        b"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n"
        b"c=IN IP4 198.51.100.7\r\nt=0 0\r\n"
    )
    sdp.connection = None
    assert sdp.serialize() == WEBRTC_OFFER


def test_build_from_scratch() -> None:
    sdp = SessionDescription(origin=Origin("sbc", "1", 1, "IN", "IP4", "192.0.2.1"))
    sdp.connection = Connection("IN", "IP4", "192.0.2.1")
    audio = sdp.add_media(MediaDescription("audio", 40000, "RTP/AVP", ["0", "101"]))
    audio.add_attribute("rtpmap", "0 PCMU/8000")
    audio.set_direction("inactive")
    assert sdp.serialize() == (
        b"v=0\r\no=sbc 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
        b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=inactive\r\n"
    )
    assert audio.direction == "inactive"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello world", "v="),
        (b"v=1\r\n", "version"),
        (b"v=0\r\ns=-\r\n", "o="),
        (b"v=0\r\no=a b c IN IP4 h\r\ns=-\r\n", "o= line"),
        (b"v=0\r\no=a 1 1 IN IP4 h\r\n", "s="),
        (SIPP_UAC + b"m=audio 70000 RTP/AVP 0\r\n", "port"),
        (SIPP_UAC + b"m=audio\r\n", "m= line"),
        (SIPP_UAC + b"m =video 3227 RTP/AVP 31\r\n", "malformed SDP line"),
        (SIPP_UAC + b"c=IN IP4\r\n", "c= line"),
        (SIPP_UAC + b"b=AS:lots\r\n", "b= line"),
        (SIPP_UAC + b"a=\r\n", "attribute"),
    ],
)
def test_garbage_raises_sdp_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(data)
    assert reason in info.value.reason
    assert info.value.status == 488


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.binary(max_size=40), st.integers(0, 2000))
def test_mutated_sdp_raises_only_sdp_error_and_round_trips(
    sample: bytes, junk: bytes, pos: int
) -> None:
    data = sample[:pos] + junk + sample[pos:]
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    assert sdp.serialize() == data
