"""SDP reading and rewriting for anchoring (sbc.media.sdp_rewrite), pure."""

from __future__ import annotations

import pytest

from sbc.media.control import Endpoint
from sbc.media.interface import MediaError
from sbc.media.sdp_rewrite import (
    LegOrigin,
    PeerMedia,
    anchor_media,
    anchor_session,
    payload_map,
    read_media,
)
from sbc.sip.sdp import parse_sdp

#: LF line endings and lines the anchor does not know: kept byte for byte.
BODY = (
    "v=0\n"
    "o=alice 2890844526 2890844526 IN IP6 2001:db8::5\n"
    "s=call\n"
    "c=IN IP6 2001:db8::5\n"
    "t=0 0\n"
    "a=x-vendor:kept as is\n"
    "m=audio 49170 RTP/AVP 0 96\n"
    "a=rtpmap:96 telephone-event/8000\n"
    "a=rtcp:53020\n"
    "a=ptime:20\n"
)


def test_read_media_with_a_short_rtcp_attribute() -> None:
    media = parse_sdp(BODY.encode()).media[0]
    peer = read_media(media, 0)
    assert peer.remote == Endpoint("2001:db8::5", 49170)
    assert peer.remote_rtcp == Endpoint("2001:db8::5", 53020)  # RFC 3605: c= address
    assert peer.connection_ip == "2001:db8::5"
    assert peer.codecs == ((96, "telephone-event/8000"),)
    assert peer.formats == ("0", "96")
    assert not peer.on_hold
    assert not peer.rtcp_mux


def test_read_media_with_a_full_rtcp_attribute_and_media_level_connection() -> None:
    body = BODY.replace("a=rtcp:53020", "a=rtcp:53020 IN IP4 192.0.2.9\nc=IN IP4 192.0.2.8")
    peer = read_media(parse_sdp(body.encode()).media[0], 0)
    assert peer.remote == Endpoint("192.0.2.8", 49170)  # media-level c= wins
    assert peer.remote_rtcp == Endpoint("192.0.2.9", 53020)


def test_inactive_is_hold() -> None:
    peer = read_media(parse_sdp((BODY + "a=inactive\n").encode()).media[0], 0)
    assert peer.on_hold
    assert peer.remote is not None  # still where it receives RTCP


def test_rewrite_touches_only_addresses_ports_origin_and_name() -> None:
    body = parse_sdp(BODY.encode())
    anchor_session(body, "198.51.100.1")
    anchor_media(body.media[0], Endpoint("10.0.0.1", 40000), "198.51.100.1")
    out = LegOrigin(77, "198.51.100.1").stamp(body).decode()
    assert out == (
        "v=0\n"
        "o=sbc 77 1 IN IP4 198.51.100.1\n"
        "s=-\n"
        "c=IN IP4 198.51.100.1\n"
        "t=0 0\n"
        "a=x-vendor:kept as is\n"
        "m=audio 40000 RTP/AVP 0 96\n"
        "a=rtpmap:96 telephone-event/8000\n"
        "a=rtcp:40001 IN IP4 198.51.100.1\n"
        "a=ptime:20\n"
    )


def test_origin_towards_an_ipv6_interface() -> None:
    body = parse_sdp(BODY.encode())
    out = LegOrigin(5, "2001:db8::1").stamp(body)
    assert b"o=sbc 5 1 IN IP6 2001:db8::1\n" in out


def test_origin_version_moves_only_on_change() -> None:
    origin = LegOrigin(1, "192.0.2.1", version=10)
    first = origin.stamp(parse_sdp(BODY.encode()))
    assert origin.stamp(parse_sdp(BODY.encode())) == first
    assert origin.version == 10
    changed = origin.stamp(parse_sdp((BODY + "a=sendonly\n").encode()))
    assert b"o=sbc 1 11 IN IP4 192.0.2.1" in changed
    assert origin.stamp(parse_sdp((BODY + "a=sendonly\n").encode())) == changed
    back = origin.stamp(parse_sdp(BODY.encode()))
    assert b" 12 IN IP4" in back  # back to the first body is still a change


def test_session_name_never_crosses() -> None:
    """RFC 8866 §5.3: each leg sees ``s=-``, not the other side's product or host name."""
    crlf = BODY.replace("s=call", "s=Acme PBX 9.1 on pbx01.corp.example").replace("\n", "\r\n")
    out = LegOrigin(3, "192.0.2.1").stamp(parse_sdp(crlf.encode()))
    assert b"\r\ns=-\r\n" in out  # the line keeps its CRLF
    assert b"Acme" not in out
    assert b"pbx01" not in out


def test_session_name_alone_does_not_move_the_version() -> None:
    """A re-offer that only renames the session is unchanged for the other leg."""
    origin = LegOrigin(1, "192.0.2.1", version=4)
    first = origin.stamp(parse_sdp(BODY.encode()))
    renamed = origin.stamp(parse_sdp(BODY.replace("s=call", "s=renamed").encode()))
    assert renamed == first
    assert origin.version == 4
    assert origin.stamp(parse_sdp(BODY.replace("s=call", "s=-").encode())) == first


def peer(*codecs: tuple[int, str]) -> PeerMedia:
    formats = tuple(str(number) for number, _ in codecs)
    return PeerMedia(None, None, False, None, formats, codecs, False)


def test_payload_map_skips_ambiguous_names_and_static_equals() -> None:
    offer = peer((0, "pcmu/8000"), (101, "telephone-event/8000"), (97, "h264/90000"))
    answer = peer(
        (0, "pcmu/8000"), (96, "telephone-event/8000"), (98, "h264/90000"), (99, "h264/90000")
    )
    assert payload_map(offer, answer) == ((96, 101),)  # H264 twice in the answer: fmtp decides
    assert payload_map(answer, offer) == ((101, 96),)


def test_payload_map_with_nothing_in_common() -> None:
    assert payload_map(peer((0, "pcmu/8000")), peer((8, "pcma/8000"))) == ()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a=rtcp:99999", "a=rtcp"),
        ("a=rtcp:5000 IN IP4", "a=rtcp"),
        ("a=rtcp:5000 IN IP4 host.example", "IP address"),
    ],
)
def test_bad_rtcp_attributes(line: str, reason: str) -> None:
    media = parse_sdp(BODY.replace("a=rtcp:53020", line).encode()).media[0]
    with pytest.raises(MediaError, match=reason) as info:
        read_media(media, 0)
    assert info.value.status == 488
