"""The leak guard's pure parts: which needles a policy gives each interface
pair, how their edges are checked, what scrub writes, and multipart lengths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peers import policy_copy

from sbc.b2bua.leaks.multipart import boundary_of, fix_part_lengths
from sbc.b2bua.leaks.needles import Edge, Needle, NeedleSet, Topology, host_needles
from sbc.b2bua.leaks.scan import BODY, START_LINE, body_start, find, scrub, where
from sbc.policy import Policy, PolicyError, load_policy

INTERFACES = """\
interfaces:
  - {name: external, address: 203.0.113.5, port: 5060, media_address: 203.0.113.6}
  - {name: internal, address: 10.0.0.1, port: 5060, advertised_address: 10.0.0.1,
     media_address: 10.0.0.2}
  - {name: v6, address: "2001:db8::1", port: 5070}
"""
TRUNKS = """\
trunks:
  - {name: carrier, interface: external, address: 198.51.100.7, port: 5080}
  - {name: pbx, interface: internal, address: pbx.corp.example, sources: [10.0.0.50/32,
     10.0.1.0/24]}
"""


def policy(tmp_path: Path, interfaces: str = INTERFACES, trunks: str = TRUNKS) -> Policy:
    directory = policy_copy(tmp_path)
    (directory / "interfaces.yaml").write_text(interfaces)
    (directory / "trunks.yaml").write_text(trunks)
    (directory / "routes.yaml").write_text("routes: []\n")
    (directory / "security.yaml").unlink(missing_ok=True)
    (directory / "admission.yaml").unlink(missing_ok=True)
    return load_policy(directory)


def texts(needles: NeedleSet) -> set[bytes]:
    """The addresses and names searched for (address:port pairs apart)."""
    return {n.text for n in needles.needles if n.edge is not Edge.HOST_PORT}


def pairs(needles: NeedleSet) -> set[bytes]:
    return {n.text for n in needles.needles if n.edge is Edge.HOST_PORT}


def test_a_pair_searches_the_other_side_and_never_this_ones(tmp_path: Path) -> None:
    topology = Topology(policy(tmp_path))
    toward_carrier = texts(topology.needles("internal", "external"))
    # The internal interface (listen, media), the PBX's name and its single-host source;
    # the /24 is not a host, and nothing of the external side is a secret there.
    assert toward_carrier == {b"10.0.0.1", b"10.0.0.2", b"pbx.corp.example", b"10.0.0.50"}
    # With their SIP ports, so scrub writes ours: the interface's and the trunk's.
    assert pairs(topology.needles("internal", "external")) == {
        b"10.0.0.1:5060",
        b"pbx.corp.example:5060",
    }
    toward_pbx = texts(topology.needles("external", "internal"))
    assert toward_pbx == {b"203.0.113.5", b"203.0.113.6", b"198.51.100.7"}
    # Without a call (or a call within one interface), every other side counts.
    everyone = texts(topology.needles(None, "internal"))
    assert toward_pbx < everyone
    assert b"2001:db8::1" in everyone
    assert b"2001:0db8:0000:0000:0000:0000:0000:0001" in everyone  # the long spelling too
    assert texts(topology.needles("internal", "internal")) == everyone


def test_an_address_shared_by_two_sides_is_searched_with_the_other_sides_port(
    tmp_path: Path,
) -> None:
    shared = """\
interfaces:
  - {name: external, address: 192.0.2.10, port: 5060}
  - {name: internal, address: 192.0.2.10, port: 5062, media_address: 192.0.2.11}
"""
    trunks = "trunks:\n  - {name: pbx, interface: internal, address: 10.9.9.9}\n"
    topology = Topology(policy(tmp_path, shared, trunks))
    needles = topology.needles("internal", "external")
    assert texts(needles) == {b"192.0.2.11", b"10.9.9.9"}
    assert pairs(needles) == {b"192.0.2.10:5062", b"10.9.9.9:5060"}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"sip:a@10.0.0.1", True),
        (b"sip:a@10.0.0.1:5060;lr", True),
        (b"c=IN IP4 10.0.0.1\r\n", True),
        (b"<sip:10.0.0.1>", True),
        (b"::ffff:10.0.0.1", True),
        (b"10.0.0.15", False),  # another address
        (b"110.0.0.1", False),
        (b"a.10.0.0.1", False),  # inside a name
        (b"10.0.0.1.nip.example", False),
        (b"10.0.0.1. end", True),  # a sentence's full stop
    ],
)
def test_an_ipv4_needle_stands_alone(text: bytes, found: bool) -> None:
    needles = host_needles("10.0.0.1", "203.0.113.5")
    assert bool(find(text, needles)) is found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"sip:a@PBX.Corp.Example:5060", True),  # host names match without case
        (b"pbx.corp.example.", True),
        (b"mypbx.corp.example", False),
        (b"pbx.corp.example.org", False),
        (b"pbx.corp.examples", False),
    ],
)
def test_a_name_needle_stands_alone(text: bytes, found: bool) -> None:
    needles = host_needles("pbx.corp.example", "203.0.113.5")
    assert bool(find(text, needles)) is found
    assert NeedleSet(needles).suspects(text) is (found or text.lower().find(b"pbx") >= 0)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"sip:a@[2001:DB8::1]:5060", True),
        (b"c=IN IP6 2001:0db8:0000:0000:0000:0000:0000:0001", True),
        (b"2001:db8::10", False),
        (b"2001:db8::1:5", False),
        (b"fe80::2001:db8::1", False),
    ],
)
def test_an_ipv6_needle_in_either_spelling(text: bytes, found: bool) -> None:
    needles = host_needles("2001:db8::1", "203.0.113.5")
    assert bool(find(text, needles)) is found


def test_scrub_writes_this_sides_value_and_drops_ipv6_brackets_around_ipv4() -> None:
    needles = sorted(
        [*host_needles("2001:db8::1", "203.0.113.5"), *host_needles("10.0.0.1", "203.0.113.5")],
        key=lambda n: -len(n.text),
    )
    assert scrub(b"sip:a@[2001:db8::1]:5060 via 10.0.0.1", needles) == (
        b"sip:a@203.0.113.5:5060 via 203.0.113.5"
    )


def test_the_longest_needle_wins_where_two_overlap() -> None:
    port = Needle(b"10.0.0.1:5062", b"203.0.113.5:5060", Edge.HOST_PORT)
    host = Needle(b"10.0.0.1", b"203.0.113.5", Edge.HOST)
    hits = find(b"<sip:10.0.0.1:5062>", [port, host])
    assert [h.needle for h in hits] == [port]
    assert scrub(b"<sip:10.0.0.1:5062>", [port, host]) == b"<sip:203.0.113.5:5060>"


def test_an_identifier_is_a_whole_token_and_keeps_its_case() -> None:
    tag = Needle(b"a84b4c76e66710", b"ours", Edge.TOKEN)
    assert find(b"To: <sip:x@y>;tag=a84b4c76e66710\r\n", [tag])
    assert not find(b"tag=a84b4c76e667101", [tag])
    assert not find(b"tag=A84B4C76E66710", [tag])
    # Escaped in a URI header (Replaces=...%3Bto-tag%3D...): still found.
    assert find(b"Replaces=abc%3Bto-tag%3Da84b4c76e66710%3Bfrom-tag%3Dx", [tag])


def test_hits_are_located_by_part() -> None:
    wire = b"INVITE sip:a@10.0.0.1 SIP/2.0\r\nVia: x\r\nX-Origin: 10.0.0.1\r\n\r\nc=10.0.0.1"
    body = body_start(wire)
    located = [where(wire, body, h.start) for h in find(wire, host_needles("10.0.0.1", "x"))]
    assert located == [START_LINE, "X-Origin", BODY]


def test_multipart_part_lengths_follow_their_content() -> None:
    body = (
        b"--b1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nhello world\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nno length\r\n--b1--\r\n"
    )
    fixed = fix_part_lengths(body, 'multipart/mixed; boundary="b1"')
    assert b"Content-Length: 11\r\n\r\nhello world\r\n" in fixed
    assert fixed.endswith(b"Content-Type: text/plain\r\n\r\nno length\r\n--b1--\r\n")
    assert fix_part_lengths(body, "text/plain") == body
    assert boundary_of("multipart/mixed;boundary=b1") == b"b1"
    assert boundary_of('multipart/mixed;boundary="unterminated') is None


@pytest.mark.parametrize(
    ("written", "mode"), [("off", "off"), ("'off'", "off"), ("block", "block"), ("", "auto")]
)
def test_leak_guard_setting(tmp_path: Path, written: str, mode: str) -> None:
    directory = policy_copy(tmp_path)
    text = f"topology: {{leak_guard: {written}}}\n" if written else ""
    (directory / "sbc.yaml").write_text(text)
    assert load_policy(directory).settings.topology.leak_guard == mode


def test_a_bad_leak_guard_value_is_refused_with_its_line(tmp_path: Path) -> None:
    directory = policy_copy(tmp_path)
    (directory / "sbc.yaml").write_text("sip: {t1_ms: 500}\ntopology:\n  leak_guard: scrubb\n")
    with pytest.raises(PolicyError) as err:
        load_policy(directory)
    assert "sbc.yaml:3: topology.leak_guard" in str(err.value)


NEEDLES = sorted(
    [
        *host_needles("10.0.0.1", "203.0.113.5"),
        *host_needles("10.0.0.10", "203.0.113.5"),
        *host_needles("pbx.corp.example", "203.0.113.5"),
        *host_needles("2001:db8::1", "203.0.113.5"),
        Needle(b"10.0.0.1:5060", b"203.0.113.5:5060", Edge.HOST_PORT),
        Needle(b"a84b4c76e66710", b"ours", Edge.TOKEN),
    ],
    key=lambda n: -len(n.text),
)
PIECES = [
    b"10.0.0.1",
    b"10.0.0.10",
    b"10.0.0.1:5060",
    b"PBX.corp.example",
    b"[2001:db8::1]",
    b"a84b4c76e66710",
    b"sip:",
    b"@",
    b";tag=",
    b".",
    b":",
    b"1",
    b"x",
    b" ",
    b"\r\n",
]


@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_nothing_is_left_after_a_scrub(pieces: list[bytes]) -> None:
    """Whatever the text, a scrubbed text has no confirmed needle left: the
    replacements are this side's own values, which no edge rule confuses with
    another side's."""
    text = b"".join(pieces)
    assert find(scrub(text, NEEDLES), NEEDLES) == []
