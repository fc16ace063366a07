"""SDP lines naming a leg's product, host or people never reach the other leg.

RFC 8866 §5.4-5.6 (i=, u=, e=, p=; i= as media title too) and §6.3
(``a=tool:``) are dropped from each leg's SDP; k= (§5.12, obsolete) and
everything else cross byte for byte. A re-offer that differs only in the
dropped lines is unchanged for the other leg: same body, same o= version
(RFC 3264 §8).
"""

from __future__ import annotations

import pytest

from sbc.media.anchor import MediaAnchor
from sbc.media.control import Endpoint, StreamSpec, StreamStats
from sbc.media.interface import LegMedia
from sbc.media.ports import PortPool
from sbc.media.sdp_rewrite import LegOrigin, anchor_media, anchor_session
from sbc.sip.sdp import parse_sdp

LEG_A = LegMedia("127.0.0.1", "127.0.0.1", (20000, 20099), peer_ip="127.0.0.10")
LEG_B = LegMedia("127.0.0.2", "127.0.0.2", (30000, 30099), peer_ip="127.0.0.20")

#: Every line that names the sender, at both levels, plus k= (kept).
LEAKY = (
    "v=0\r\n"
    "o=carrier 1 1 IN IP4 192.0.2.10\r\n"
    "s=-\r\n"
    "i=Acme SoftSwitch 4.2 on sw07.carrier.example\r\n"
    "u=http://sw07.carrier.example/call/42\r\n"
    "e=Jane Doe <noc@carrier.example>\r\n"
    "p=+1 617 555 0100\r\n"
    "c=IN IP4 192.0.2.10\r\n"
    "t=0 0\r\n"
    "k=prompt\r\n"
    "a=tool:AcmeSoftSwitch 4.2\r\n"
    "a=x-vendor:kept\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "i=trunk 7 towards pbx01.corp.example\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "i=camera of room 4.12\r\n"
)
#: The same offer without the dropped lines.
PLAIN = "".join(
    line
    for line in LEAKY.splitlines(keepends=True)
    if line[:2] not in ("i=", "u=", "e=", "p=") and not line.startswith("a=tool:")
)
DROPPED = ("i=", "u=", "e=", "p=", "a=tool")
ANSWER = (
    "v=0\n"
    "o=pbx 7 7 IN IP4 127.0.0.20\n"
    "s=pbx01\n"
    "i=Asterisk PBX 20.5.0\n"
    "u=http://pbx01.corp.example/\n"
    "e=admin@corp.example\n"
    "p=+44 20 7946 0000\n"
    "c=IN IP4 127.0.0.20\n"
    "t=0 0\n"
    "a=tool:Asterisk PBX 20.5.0\n"
    "m=audio 7000 RTP/AVP 0\n"
    "i=extension 201 (Bob Smith)\n"
    "a=rtpmap:0 PCMU/8000\n"
    "m=video 0 RTP/AVP 96\n"
)


class NullRelay:
    """Accepts every stream; these tests look only at the SDP."""

    def update(self, stream: StreamSpec) -> None:
        pass

    def remove(self, session: str, index: int) -> None:
        pass

    def delete(self, session: str) -> None:
        pass

    def stats(self, session: str) -> list[StreamStats]:
        return []


@pytest.fixture
def anchor() -> MediaAnchor:
    media = MediaAnchor(NullRelay(), PortPool(), first_session_id=500)
    media.open("call-1", LEG_A, LEG_B)
    return media


def leaks(body: bytes) -> list[str]:
    return [line for line in body.decode().splitlines() if line.startswith(DROPPED)]


def test_rewrite_drops_identity_lines_and_keeps_the_rest_byte_exact() -> None:
    body = parse_sdp(LEAKY.encode())
    anchor_session(body, "198.51.100.1")
    anchor_media(body.media[0], Endpoint("10.0.0.1", 40000), "198.51.100.1")
    anchor_media(body.media[1], None, "198.51.100.1")
    assert LegOrigin(9, "198.51.100.1").stamp(body) == (
        b"v=0\r\n"
        b"o=sbc 9 1 IN IP4 198.51.100.1\r\n"
        b"s=-\r\n"
        b"c=IN IP4 198.51.100.1\r\n"
        b"t=0 0\r\n"
        b"k=prompt\r\n"  # obsolete (RFC 8866 §5.12) but not ours to judge
        b"a=x-vendor:kept\r\n"
        b"m=audio 40000 RTP/AVP 0\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"m=video 0 RTP/AVP 96\r\n"
    )


def test_a_trailing_dropped_line_without_line_ending() -> None:
    """The body ends on a dropped line with no newline: what remains keeps its own."""
    body = parse_sdp((PLAIN + "m=audio 0 RTP/AVP 0\ni=last").encode())
    for media in body.media:
        anchor_media(media, None, "198.51.100.1")
    out = body.serialize()
    assert out.endswith(b"m=audio 0 RTP/AVP 0\n")
    assert b"i=last" not in out


def test_offer_and_answer_reach_the_other_leg_without_them(anchor: MediaAnchor) -> None:
    to_b = anchor.offer("call-1", "a", "b", LEAKY.encode())
    assert leaks(to_b) == []
    assert b"Acme" not in to_b
    assert b"carrier.example" not in to_b
    assert b"pbx01" not in to_b
    assert b"k=prompt\r\n" in to_b
    assert b"a=x-vendor:kept\r\n" in to_b
    to_a = anchor.answer("call-1", "b", "a", ANSWER.encode())
    assert leaks(to_a) == []
    assert b"Asterisk" not in to_a
    assert b"corp.example" not in to_a
    assert b"Bob" not in to_a


def test_the_same_offer_without_them_gives_the_same_bytes(anchor: MediaAnchor) -> None:
    """Dropping is the only difference: a body with none of these lines comes out equal."""
    with_lines = anchor.offer("call-1", "a", "b", LEAKY.encode())
    anchor.answer("call-1", "b", "a", ANSWER.encode())
    without = anchor.offer("call-1", "a", "b", PLAIN.encode())
    assert without == with_lines


@pytest.mark.parametrize(
    "reoffer",
    [
        PLAIN,  # all of them gone
        LEAKY.replace("Acme SoftSwitch 4.2", "Acme SoftSwitch 4.3"),
        LEAKY.replace("a=tool:AcmeSoftSwitch 4.2", "a=tool:other"),
        LEAKY.replace("p=+1 617 555 0100\r\n", "p=+1 617 555 0199\r\ne=other@example.net\r\n"),
        LEAKY.replace("i=trunk 7 towards pbx01.corp.example\r\n", ""),
        LEAKY.replace("i=camera of room 4.12\r\n", "i=another title\r\n"),
    ],
    ids=["none", "session-info", "tool", "phone-and-email", "no-media-title", "media-title"],
)
def test_a_reoffer_differing_only_in_them_is_unchanged(anchor: MediaAnchor, reoffer: str) -> None:
    first = anchor.offer("call-1", "a", "b", LEAKY.encode())
    first_answer = anchor.answer("call-1", "b", "a", ANSWER.encode())
    assert anchor.offer("call-1", "a", "b", reoffer.encode()) == first
    assert parse_sdp(first).origin.sess_version == 1
    # The answer to it, with other identity lines, is unchanged for leg a too.
    renamed = ANSWER.replace("20.5.0", "21.0.1").replace("Bob Smith", "Robert Smith")
    assert anchor.answer("call-1", "b", "a", renamed.encode()) == first_answer


def test_a_real_change_still_moves_the_version(anchor: MediaAnchor) -> None:
    anchor.offer("call-1", "a", "b", LEAKY.encode())
    anchor.answer("call-1", "b", "a", ANSWER.encode())
    held = LEAKY.replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n")
    to_b = anchor.offer("call-1", "a", "b", held.encode())
    assert parse_sdp(to_b).origin.sess_version == 2
    assert parse_sdp(to_b).media[0].direction == "sendonly"
    assert leaks(to_b) == []
