"""Source keys: IPv6 buckets, strikes and bans cover a /64 by default, IPv4 a /32.

One host on IPv6 owns a whole /64 (SLAAC, privacy addresses): keyed per
/128 it could send from a fresh address each time and never meet its limit
or its ban.
"""

from __future__ import annotations

import pytest
from guard_samples import guard, only_invites

from sbc.guard.guard import Guard
from sbc.guard.keys import SourceKeys

HOST = "2001:db8:1:2::1"
SAME_64 = ("2001:db8:1:2::ffff", "2001:db8:1:2:abcd:ef01:2345:6789")
OTHER_64 = "2001:db8:1:3::1"


def invite(g: Guard, source: str, now: float = 0.0) -> str:
    verdict = g.check("INVITE", source, "external", None, "Phone/1.0", now)
    return str(verdict.status) if verdict.action == "respond" else verdict.action


def test_addresses_of_one_64_share_a_bucket() -> None:
    g = guard(only_invites(1, 2))
    assert [invite(g, HOST), invite(g, SAME_64[0]), invite(g, SAME_64[1])] == [
        "allow",
        "allow",
        "503",
    ]
    assert invite(g, OTHER_64) == "allow"  # another /64: another host
    assert g.tracked_sources() == 2


def test_a_ban_covers_the_whole_64() -> None:
    g = guard()
    assert g.check("OPTIONS", HOST, "external", None, "friendly-scanner", 0.0).action == "drop"
    assert [b.source for b in g.bans(0.0)] == ["2001:db8:1:2::/64"]
    for address in SAME_64:
        assert g.check_source(address, "external", 1.0).action == "drop"
    assert g.check_source(OTHER_64, "external", 1.0).allowed
    assert g.unban(SAME_64[0])  # an address in the banned block lifts it
    assert g.check_source(HOST, "external", 2.0).allowed


def test_unban_takes_the_block_as_listed() -> None:
    g = guard()
    g.ban(HOST, 0.0)
    assert g.unban("2001:db8:1:2::/64")
    assert g.bans(0.0) == []


def test_strikes_of_one_64_add_up() -> None:
    g = guard(only_invites(1, 1, strikes=3, window_s=10))
    addresses = [f"2001:db8:1:2::{i:x}" for i in range(1, 10)]
    answers = [invite(g, a, 0.0) for a in addresses[:4]]
    assert answers == ["allow", "503", "503", "drop"]  # three strikes from three addresses
    assert invite(g, addresses[8], 1.0) == "drop"


def test_prefix_lengths_are_configurable() -> None:
    per_host = guard({**only_invites(1, 1), "source_prefix": {"ipv6": 128}})
    assert [invite(per_host, HOST), invite(per_host, SAME_64[0])] == ["allow", "allow"]
    per_24 = guard({**only_invites(1, 1), "source_prefix": {"ipv4": 24}})
    assert [invite(per_24, "192.0.2.1"), invite(per_24, "192.0.2.200")] == ["allow", "503"]
    assert invite(per_24, "192.0.3.1") == "allow"


def test_ipv4_mapped_sources_are_keyed_as_their_ipv4_address() -> None:
    """Not as one ::ffff:0:0/64 block, which would lump every IPv4 client together."""
    g = guard()
    g.check("OPTIONS", "::ffff:192.0.2.1", "external", None, "sipvicious", 0.0)
    assert [b.source for b in g.bans(0.0)] == ["192.0.2.1"]
    assert g.check_source("192.0.2.1", "external", 1.0).action == "drop"
    assert g.check_source("::ffff:192.0.2.2", "external", 1.0).allowed


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:DB8::1", "2001:db8::/64"),
        ("2001:db8:0:0:1::1", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_default_keys(address: str, key: str) -> None:
    assert SourceKeys().of(address) == key


def test_full_length_prefixes_key_by_the_address_itself() -> None:
    keys = SourceKeys(ipv4_prefix=32, ipv6_prefix=128)
    assert keys.of("2001:DB8::1") == "2001:db8::1"
    assert SourceKeys(ipv4_prefix=16).of("10.1.2.3") == "10.1.0.0/16"


def test_the_key_cache_stays_bounded_under_spoofed_ipv6_sources() -> None:
    keys = SourceKeys(cache_size=1000)
    for i in range(1, 20_000):
        assert keys.of(f"2001:db8:{i:x}::1") == f"2001:db8:{i:x}::/64"
    assert keys.cached() <= 1000


def test_exemptions_are_checked_on_the_address_not_its_block() -> None:
    g = guard({"bans": {"exempt": ["2001:db8:1:2::1/128"]}})
    assert g.check("OPTIONS", HOST, "external", None, "friendly-scanner", 0.0).allowed
    assert g.check("OPTIONS", SAME_64[0], "external", None, "friendly-scanner", 0.0).action == (
        "drop"
    )
