"""DTMF interworking as the far ends see it: the PBX trunk carries DTMF as SIP
INFO, the carrier as RFC 4733 events (the relay's side is faked here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peers import POLICIES, Dlg, Net, established

from sbc.media.dtmf import MAX_DURATION_MS
from sbc.media.interface import LegMedia, MediaStats, PassthroughMedia
from sbc.policy import load_policy

RELAY_BODY = b"Signal=5\r\nDuration=200\r\n"


class DtmfMedia:
    """SDP crosses as is; digits handed to the relay are recorded."""

    def __init__(self) -> None:
        self.opened: dict[str, tuple[LegMedia, LegMedia]] = {}
        self.digits: list[tuple[str, str, int]] = []
        self.deliverable = True

    def open(self, session: str, a: LegMedia, b: LegMedia) -> None:
        self.opened[session] = (a, b)

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        return sdp

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        return sdp

    def rejected(self, session: str, from_leg: str) -> None:
        pass

    def delete(self, session: str) -> None:
        pass

    def send_dtmf(self, session: str, to_leg: str, digit: str, duration_ms: int) -> bool:
        self.digits.append((to_leg, digit, duration_ms))
        return self.deliverable

    def stats(self, session: str) -> MediaStats:
        return MediaStats()


def make_net(tmp_path: Path, pbx_lines: str = "    dtmf: info\n") -> tuple[Net, DtmfMedia]:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    trunks = (directory / "trunks.yaml").read_text()
    trunks = trunks.replace("  - name: pbx\n", f"  - name: pbx\n{pbx_lines}", 1)
    (directory / "trunks.yaml").write_text(trunks)
    net = Net(load_policy(directory))
    media = DtmfMedia()
    net.core.media = media
    return net, media


def call(net: Net) -> tuple[Dlg, Dlg, str]:
    """Carrier (leg a, RFC 4733) calls the PBX (leg b, INFO)."""
    a, b = established(net, net.carrier, net.pbx)
    [call_id] = net.core.calls
    return a, b, call_id


def test_leg_media_carries_each_trunks_mode(tmp_path: Path) -> None:
    net, media = make_net(tmp_path)
    call(net)
    [(leg_a, leg_b)] = media.opened.values()
    assert (leg_a.dtmf, leg_b.dtmf) == ("rfc4733", "info")


@pytest.mark.parametrize(
    ("content_type", "body", "digit", "duration"),
    [
        ("application/dtmf-relay", RELAY_BODY, "5", 200),
        ("Application/DTMF-Relay; charset=x", b"signal= #\nduration = 90\n", "#", 90),
        ("application/dtmf-relay", b"Signal=11\r\n", "#", 160),
        ("application/dtmf", b"*\r\n", "*", 160),
        ("application/dtmf", b"b", "B", 160),
        # int() refuses 5,000 digits; a huge duration is the longest we send
        ("application/dtmf-relay", b"Signal=1\r\nDuration=" + b"9" * 5000, "1", MAX_DURATION_MS),
    ],
)
def test_info_from_the_info_leg_is_answered_here_and_becomes_events(
    tmp_path: Path, content_type: str, body: bytes, digit: str, duration: int
) -> None:
    net, media = make_net(tmp_path)
    _, b, _ = call(net)
    net.pbx.request(b, "INFO", body=body, headers=[("Content-Type", content_type)])
    assert net.pbx.take_response(200, "INFO")
    assert net.carrier.requests("INFO") == []  # not relayed
    assert media.digits == [("a", digit, duration)]
    assert net.core.stats["dtmf_from_info"] == 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Duration=160\r\n"),
        ("application/dtmf-relay", b"Signal=E\r\nDuration=160\r\n"),
        ("application/dtmf-relay", b"Signal=1\r\nDuration=long\r\n"),
        ("application/dtmf", b""),
        ("application/dtmf", b"16"),
        ("application/dtmf-relay", "Signal=1\r\nDuration=\u00b2\r\n".encode()),  # isdigit()
        ("application/dtmf", "1\u00b2".encode()),
    ],
)
def test_unreadable_dtmf_info_gets_400_and_no_digit(
    tmp_path: Path, content_type: str, body: bytes
) -> None:
    net, media = make_net(tmp_path)
    _, b, _ = call(net)
    net.pbx.request(b, "INFO", body=body, headers=[("Content-Type", content_type)])
    assert net.pbx.take_response(400, "INFO")
    assert media.digits == []
    assert net.carrier.requests("INFO") == []


def test_digit_without_telephone_event_is_answered_200_and_counted(tmp_path: Path) -> None:
    net, media = make_net(tmp_path)
    media.deliverable = False
    _, b, _ = call(net)
    net.pbx.request(
        b, "INFO", body=RELAY_BODY, headers=[("Content-Type", "application/dtmf-relay")]
    )
    assert net.pbx.take_response(200, "INFO")
    assert net.core.stats["dtmf_undelivered"] == 1
    assert net.core.stats["dtmf_from_info"] == 0


def test_other_info_bodies_and_the_rfc4733_legs_info_are_relayed(tmp_path: Path) -> None:
    net, media = make_net(tmp_path)
    a, b, _ = call(net)
    net.pbx.request(b, "INFO", body=b"x", headers=[("Content-Type", "text/plain")])
    assert net.carrier.take_request("INFO").body == b"x"
    # the carrier speaks RFC 4733: an INFO from it is its own business, relayed
    net.carrier.request(
        a, "INFO", body=RELAY_BODY, headers=[("Content-Type", "application/dtmf-relay")]
    )
    assert net.pbx.take_request("INFO").body == RELAY_BODY
    assert media.digits == []


def test_same_modes_relay_dtmf_info_unchanged(tmp_path: Path) -> None:
    net, media = make_net(tmp_path, pbx_lines="")
    _, b, call_id = call(net)
    net.pbx.request(
        b, "INFO", body=RELAY_BODY, headers=[("Content-Type", "application/dtmf-relay")]
    )
    assert net.carrier.take_request("INFO").body == RELAY_BODY
    assert media.digits == []
    assert net.core.dtmf(call_id, "a", "1", 100, net.now) == []  # nothing to convert to


def test_relay_digits_become_info_in_the_pbx_dialog(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    _, b, call_id = call(net)
    net.route(net.core.dtmf(call_id, "a", "1", 120, net.now))
    first = net.pbx.take_request("INFO")
    assert first.headers.get("Content-Type") == "application/dtmf-relay"
    assert first.body == b"Signal=1\r\nDuration=120\r\n"
    # in the PBX's dialog: its Call-ID, its tag as To, ours as From
    assert first.call_id == b.call_id
    assert first.to.tag == b.local_tag
    assert first.from_.tag == b.remote_tag
    net.pbx.respond(first, 200)
    net.route(net.core.dtmf(call_id, "a", "#", 80, net.now))
    second = net.pbx.take_request("INFO")
    assert second.body == b"Signal=#\r\nDuration=80\r\n"
    assert second.cseq.seq > first.cseq.seq
    # a refusal of our INFO does not end the call, and nothing reaches the carrier
    net.pbx.respond(second, 500)
    net.advance(5)
    assert net.carrier.inbox == []
    assert net.pbx.requests("BYE") == []
    assert net.core.stats["dtmf_to_info"] == 2
    assert call_id in net.core.calls


def test_info_style_dtmf_sends_a_bare_digit(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path, pbx_lines="    dtmf: info\n    dtmf_info: dtmf\n")
    _, _, call_id = call(net)
    net.route(net.core.dtmf(call_id, "a", "9", 100, net.now))
    info = net.pbx.take_request("INFO")
    assert info.headers.get("Content-Type") == "application/dtmf"
    assert info.body == b"9"


def test_unanswered_info_does_not_end_the_call(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    _, _, call_id = call(net)
    net.drop_next.add("pbx")
    net.route(net.core.dtmf(call_id, "a", "3", 100, net.now))
    net.advance(64)  # Timer F: the INFO times out
    assert call_id in net.core.calls
    assert net.pbx.requests("BYE") == []
    assert net.carrier.requests("BYE") == []


def test_digits_for_unknown_or_unanswered_calls_are_dropped(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    assert net.core.dtmf("no-such-call", "a", "1", 100, net.now) == []
    net.carrier.invite()
    net.pbx.take_request("INVITE")
    [call_id] = net.core.calls
    assert net.core.dtmf(call_id, "a", "1", 100, net.now) == []


def test_without_media_anchoring_dtmf_info_is_relayed(tmp_path: Path) -> None:
    net, _ = make_net(tmp_path)
    net.core.media = PassthroughMedia()
    _, b, _ = call(net)
    net.pbx.request(
        b, "INFO", body=RELAY_BODY, headers=[("Content-Type", "application/dtmf-relay")]
    )
    assert net.carrier.take_request("INFO").body == RELAY_BODY


def test_digits_wait_for_the_previous_info_to_be_answered(tmp_path: Path) -> None:
    """RFC 3261 §12.2.2: INFOs in flight together could arrive out of order
    and the lower CSeq be refused; ours go one at a time, in order."""
    net, _ = make_net(tmp_path)
    _, _, call_id = call(net)
    for digit in "123":
        net.route(net.core.dtmf(call_id, "a", digit, 100, net.now))
    first = net.pbx.take_request("INFO")
    assert first.body.startswith(b"Signal=1\r\n")
    assert net.pbx.requests("INFO") == []  # 2 and 3 wait
    net.pbx.respond(first, 200)
    second = net.pbx.take_request("INFO")
    assert second.body.startswith(b"Signal=2\r\n")
    net.pbx.respond(second, 100)  # a provisional answer does not release the next
    assert net.pbx.requests("INFO") == []
    net.pbx.respond(second, 486)  # a refusal does
    third = net.pbx.take_request("INFO")
    assert third.body.startswith(b"Signal=3\r\n")
    assert first.cseq.seq < second.cseq.seq < third.cseq.seq
    # an INFO that times out releases the next one too
    net.route(net.core.dtmf(call_id, "a", "4", 100, net.now))
    assert net.pbx.requests("INFO") == []
    net.advance(64)
    fourth = net.pbx.requests("INFO")[-1]
    assert fourth.body.startswith(b"Signal=4\r\n")
    assert call_id in net.core.calls
