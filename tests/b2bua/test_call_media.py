"""The B2BUA's side of the media interface: sessions opened per call, SDP
refused with 488 leaving nothing half set up, media torn down at the end."""

from __future__ import annotations

from peers import Net, established, sdp

from sbc.media.interface import LegMedia, MediaError, MediaStats


class RecordingMedia:
    """A MediaHandler that marks what it rewrote and can refuse SDP."""

    def __init__(self) -> None:
        self.opened: dict[str, tuple[LegMedia, LegMedia]] = {}
        self.deleted: list[str] = []
        self.rejections: list[tuple[str, str]] = []
        self.refuse_offer_from: str | None = None
        self.refuse_answer = False
        self.offers = 0

    def open(self, session: str, a: LegMedia, b: LegMedia) -> None:
        self.opened[session] = (a, b)

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        self.offers += 1
        if from_leg == self.refuse_offer_from:
            raise MediaError("no usable media")
        return sdp.replace(b"s=-", f"s=anchored-for-{to_leg}".encode())

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        if self.refuse_answer:
            raise MediaError("answer names no offered codec")
        return sdp.replace(b"s=-", f"s=anchored-for-{to_leg}".encode())

    def rejected(self, session: str, from_leg: str) -> None:
        self.rejections.append((session, from_leg))

    def delete(self, session: str) -> None:
        self.deleted.append(session)

    def stats(self, session: str) -> MediaStats:
        return MediaStats()


def _media(net: Net) -> RecordingMedia:
    media = RecordingMedia()
    net.core.media = media
    return media


def test_session_opened_with_each_legs_media_and_deleted_at_end(net: Net) -> None:
    media = _media(net)
    a, _ = established(net, net.carrier, net.pbx)
    ((session, (leg_a, leg_b)),) = media.opened.items()
    assert (leg_a.address, leg_a.advertised, leg_a.peer_ip) == ("127.0.0.1",) * 2 + ("127.0.0.10",)
    assert (leg_b.address, leg_b.advertised, leg_b.peer_ip) == ("127.0.0.2",) * 2 + ("127.0.0.20",)
    to_pbx = [data for target, data in net.log if target.host == "127.0.0.20"]
    assert b"s=anchored-for-b" in next(d for d in to_pbx if d.startswith(b"INVITE"))
    to_carrier = [data for target, data in net.log if target.host == "127.0.0.10"]
    assert b"s=anchored-for-a" in next(d for d in to_carrier if d.startswith(b"SIP/2.0 200"))
    net.carrier.request(a, "BYE")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    assert media.deleted == [session]


def test_refused_offer_is_488_and_no_b_leg(net: Net) -> None:
    media = _media(net)
    media.refuse_offer_from = "a"
    net.carrier.invite()
    refused = net.carrier.take_response(488)
    assert "no usable media" in refused.reason
    assert net.pbx.requests("INVITE") == []
    assert net.core.calls == {}
    assert media.deleted == list(media.opened)


def test_refused_answer_acks_and_byes_callee_488_to_caller(net: Net) -> None:
    media = _media(net)
    media.refuse_answer = True
    net.carrier.invite()
    invite = net.pbx.take_request("INVITE")
    net.pbx.respond(invite, 200, body=sdp("127.0.0.20"))
    assert net.carrier.take_response(488)
    assert net.pbx.take_request("ACK")
    net.pbx.respond(net.pbx.take_request("BYE"), 200)
    assert net.core.calls == {}


def test_refused_reoffer_is_488_and_call_goes_on(net: Net) -> None:
    media = _media(net)
    a, _ = established(net, net.carrier, net.pbx)
    media.refuse_offer_from = "a"
    net.carrier.request(a, "INVITE", body=sdp("127.0.0.10", version=2))
    assert net.carrier.take_response(488, "INVITE")
    assert net.pbx.requests("INVITE")[1:] == []
    assert len(net.core.calls) == 1


def test_reoffer_refused_by_the_other_leg_is_undone(net: Net) -> None:
    media = _media(net)
    a, _ = established(net, net.carrier, net.pbx)
    net.carrier.request(a, "INVITE", body=sdp("127.0.0.10", version=2))
    reinvite = net.pbx.take_request("INVITE")
    net.pbx.respond(reinvite, 488)
    assert net.carrier.take_response(488, "INVITE")
    ((session, leg),) = media.rejections
    assert (session, leg) == (next(iter(media.opened)), "a")
    assert len(net.core.calls) == 1
