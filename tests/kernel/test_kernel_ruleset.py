"""The kernel filter's ruleset text, built from a policy without touching the kernel."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from sbc.kernel.ruleset import (
    FilterSpec,
    Listener,
    TrunkCeiling,
    ban_commands,
    ban_element,
    dropped_counts,
    ruleset,
    spec_for,
)
from sbc.policy import load_policy
from sbc.policy.security import PacketCeiling

INTERFACES = """\
interfaces:
  - {name: external, address: 192.0.2.1, port: 5060, transports: [udp, tcp, tls],
     tls: {port: 5061, certfile: c.pem, keyfile: k.pem}}
  - {name: internal, address: "2001:db8::2", port: 5070, transports: [udp]}
"""

TRUNKS = """\
trunks:
  - {name: carrier, interface: external, address: 198.51.100.10, sources: [198.51.100.0/28]}
  - {name: branch, interface: external, address: 203.0.113.30}
  - {name: byname, interface: external, address: sip.example.net}
  - {name: pbx, interface: internal, address: "2001:db8::20", sources: ["::ffff:10.0.0.0/104"]}
"""

ROUTES = "routes:\n  - {name: r, from_trunk: carrier, to: [pbx]}\n"

LISTENERS = (
    Listener("192.0.2.1", "udp", 5060),
    Listener("192.0.2.1", "tcp", 5060),
    Listener("192.0.2.1", "tls", 5061),
    Listener("2001:db8::2", "udp", 5070),
)


def policy_with(tmp_path: Path, security: str = "") -> FilterSpec:
    for name, text in (
        ("interfaces.yaml", INTERFACES),
        ("trunks.yaml", TRUNKS),
        ("routes.yaml", ROUTES),
        ("security.yaml", security),
    ):
        (tmp_path / name).write_text(text)
    (tmp_path / "c.pem").write_text("")
    (tmp_path / "k.pem").write_text("")
    return spec_for(load_policy(tmp_path), LISTENERS)


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_defaults_from_a_policy(tmp_path: Path) -> None:
    spec = policy_with(tmp_path)
    assert spec.stranger == PacketCeiling(500, 1000)
    assert spec.source_prefix == (32, 64)
    assert spec.meter_size == 100_000  # rate_limits.max_sources
    # Every trunk with a literal address or sources shares the default ceiling; a host
    # name matches nothing; an IPv4-mapped block is the IPv4 block on the wire.
    assert spec.trunks == (
        TrunkCeiling(
            "trunks",
            PacketCeiling(5000, 10_000),
            tuple(
                ipaddress.ip_network(n)
                for n in (
                    "198.51.100.10/32",
                    "198.51.100.0/28",
                    "203.0.113.30/32",
                    "2001:db8::20/128",
                    "10.0.0.0/8",
                )
            ),
        ),
    )


def test_the_table_replaces_itself_in_one_transaction(tmp_path: Path) -> None:
    text = lines(ruleset("sbc_42", policy_with(tmp_path)))
    assert text[:4] == [
        "add table inet sbc_42 { flags owner; }",
        "delete table inet sbc_42",
        "table inet sbc_42 {",
        "flags owner",
    ]
    for name in ("banned", "rate", "trunk_rate"):
        assert f"counter {name} {{ }}" in text


def test_listeners_cover_every_transport_and_family(tmp_path: Path) -> None:
    text = lines(ruleset("sbc_1", policy_with(tmp_path)))
    assert (
        "set sip4 { type ipv4_addr . inet_proto . inet_service; elements = {"
        " 192.0.2.1 . tcp . 5060, 192.0.2.1 . tcp . 5061, 192.0.2.1 . udp . 5060 }; }"
    ) in text
    assert (
        "set sip6 { type ipv6_addr . inet_proto . inet_service;"
        " elements = { 2001:db8::2 . udp . 5070 }; }"
    ) in text
    assert "type filter hook prerouting priority raw; policy accept;" in text
    assert "ip daddr . meta l4proto . th dport @sip4 jump sip4" in text
    assert "ip6 daddr . meta l4proto . th dport @sip6 jump sip6" in text
    assert not any("fib daddr" in line for line in text)  # no wildcard listener


def test_wildcard_listeners_match_local_addresses() -> None:
    spec = FilterSpec(listeners=(Listener("::", "udp", 5060),), stranger=None)
    text = lines(ruleset("t", spec))
    assert "set sip_any4 { type inet_proto . inet_service; elements = { udp . 5060 }; }" in text
    assert "set sip_any6 { type inet_proto . inet_service; elements = { udp . 5060 }; }" in text
    assert (
        "meta nfproto ipv4 meta l4proto . th dport @sip_any4 fib daddr type local jump sip4"
    ) in text
    assert (
        "meta nfproto ipv6 meta l4proto . th dport @sip_any6 fib daddr type local jump sip6"
    ) in text


def test_bans_drop_everything_then_ceilings_apply_to_udp(tmp_path: Path) -> None:
    text = lines(ruleset("t", policy_with(tmp_path)))
    chain = text[text.index("chain sip4 {") : text.index("chain sip6 {")]
    assert chain == [
        "chain sip4 {",
        'ip saddr @banned4_32 counter name "banned" drop',
        "meta l4proto != udp accept",
        "ip saddr @trunks4_0 goto trunk4_0",
        "update @meter4 { ip saddr limit rate over 500/second burst 1000 packets }"
        ' counter name "rate" drop',
        "}",
    ]
    chain6 = text[text.index("chain sip6 {") : text.index("chain sip6 {") + 6]
    assert chain6 == [
        "chain sip6 {",
        'ip6 saddr & ffff:ffff:ffff:ffff:: @banned6_64 counter name "banned" drop',
        "meta l4proto != udp accept",
        "ip6 saddr @trunks6_0 goto trunk6_0",
        "update @meter6 { ip6 saddr & ffff:ffff:ffff:ffff::"
        ' limit rate over 500/second burst 1000 packets } counter name "rate" drop',
        "}",
    ]
    assert "set banned4_32 { type ipv4_addr; flags timeout; }" in text
    assert "set banned6_64 { type ipv6_addr; flags timeout; }" in text
    assert (
        "set trunks4_0 { type ipv4_addr; flags interval; auto-merge; elements ="
        " { 10.0.0.0/8, 198.51.100.0/28, 198.51.100.10, 203.0.113.30 }; }"
    ) in text
    assert (
        "set trunks6_0 { type ipv6_addr; flags interval; auto-merge; elements = { 2001:db8::20 }; }"
    ) in text
    assert (
        "update @meter4_trunk_0 { ip saddr limit rate over 5000/second burst 10000 packets }"
        ' counter name "trunk_rate" drop'
    ) in text
    assert (
        "set meter4 { type ipv4_addr; size 100000; flags dynamic, timeout; timeout 10s; }"
    ) in text


def test_settings_change_ceilings_keys_and_trunk_groups(tmp_path: Path) -> None:
    spec = policy_with(
        tmp_path,
        "source_prefix: {ipv4: 24, ipv6: 56}\n"
        "kernel_filter:\n"
        "  stranger_pps: 50\n"
        "  stranger_burst: 100\n"
        "  trunk_pps: null\n"
        "  per_trunk:\n"
        "    branch: {pps: 200, burst: 400}\n"
        "    pbx: null\n",
    )
    assert [(g.label, g.ceiling) for g in spec.trunks] == [
        ("branch", PacketCeiling(200, 400)),
        ("pbx", None),
        ("trunks", None),
    ]
    text = lines(ruleset("t", spec))
    assert 'ip saddr & 255.255.255.0 @banned4_24 counter name "banned" drop' in text
    assert (
        "update @meter4 { ip saddr & 255.255.255.0 limit rate over 50/second burst 100 packets }"
        ' counter name "rate" drop'
    ) in text
    assert "update @meter6 { ip6 saddr & ffff:ffff:ffff:ff00::" in " ".join(text)
    chain = text[text.index("chain sip4 {") : text.index("chain sip6 {")]
    assert chain[3:6] == [  # first match wins: a trunk's own ceiling before the shared one
        "ip saddr @trunks4_0 goto trunk4_0",
        "ip saddr @trunks4_1 goto trunk4_1",
        "ip saddr @trunks4_2 goto trunk4_2",
    ]
    assert text[text.index("chain trunk4_0 {  # branch") + 1] == (
        "update @meter4_trunk_0 { ip saddr limit rate over 200/second burst 400 packets }"
        ' counter name "trunk_rate" drop'
    )
    assert text[text.index("chain trunk4_1 {  # pbx") + 1] == "accept"  # no ceiling
    assert text[text.index("chain trunk4_2 {  # trunks") + 1] == "accept"


def test_no_stranger_ceiling_means_no_meter(tmp_path: Path) -> None:
    spec = policy_with(tmp_path, "kernel_filter: {stranger_pps: null}\n")
    text = ruleset("t", spec)
    assert "@meter4 " not in text
    assert "set meter4 " not in text


def test_bans_of_older_prefix_lengths_get_their_own_set() -> None:
    spec = FilterSpec(
        listeners=LISTENERS,
        stranger=None,
        other_ban_prefixes=frozenset({(6, 128), (4, 32)}),
    )
    assert spec.ban_prefixes == ((4, 32), (6, 64), (6, 128))
    text = lines(ruleset("t", spec))
    assert 'ip6 saddr @banned6_128 counter name "banned" drop' in text


def test_ban_elements() -> None:
    assert ban_element("192.0.2.7") == (4, 32, "192.0.2.7")
    assert ban_element("10.1.2.0/24") == (4, 24, "10.1.2.0")
    assert ban_element("2001:db8:1:2::/64") == (6, 64, "2001:db8:1:2::")
    assert ban_element("2001:db8::1") == (6, 128, "2001:db8::1")
    assert ban_element("not-an-address") is None


def test_ban_commands_delete_first_then_add_with_timeouts() -> None:
    text = ban_commands(
        "t",
        [("192.0.2.7", 599.9991), ("2001:db8:1:2::/64", 10.0), ("junk", 5.0)],
        ["192.0.2.8", "2001:db8:9::/64"],
    )
    assert text.splitlines() == [
        "delete element inet t banned4_32 { 192.0.2.8 }",
        "delete element inet t banned6_64 { 2001:db8:9:: }",
        "add element inet t banned4_32 { 192.0.2.7 timeout 600000ms }",
        "add element inet t banned6_64 { 2001:db8:1:2:: timeout 10000ms }",
    ]
    # A ban longer than an element may last is capped (the syncer puts it back later).
    assert "timeout 2592000000ms" in ban_commands("t", [("192.0.2.7", 1e9)], [])
    flushed = ban_commands("t", [], [], flush=[(4, 32), (6, 64)]).splitlines()
    assert flushed == ["flush set inet t banned4_32", "flush set inet t banned6_64"]
    assert ban_commands("t", [], []) == ""


def test_dropped_counts_from_json() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"counter": {"name": "banned", "packets": 7, "bytes": 100}},
            {"counter": {"name": "rate", "packets": 3}},
            {"counter": {"name": "other", "packets": 9}},
        ]
    }
    assert dropped_counts(listing) == {"banned": 7, "rate": 3, "trunk_rate": 0}


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft (Debian package nftables) absent")
def test_nft_accepts_the_text(tmp_path: Path) -> None:
    """``nft --check`` parses and evaluates the ruleset (no root needed for the syntax,
    only for the kernel's own checks, which a non-root run skips)."""
    spec = policy_with(
        tmp_path, "kernel_filter: {per_trunk: {branch: {pps: 200, burst: 400}, pbx: null}}\n"
    )
    path = tmp_path / "ruleset.nft"
    wildcard = FilterSpec(listeners=(Listener("0.0.0.0", "udp", 5060),), stranger=None)
    path.write_text(
        ruleset("sbc_check", spec)
        + ruleset("sbc_check2", wildcard)
        + ban_commands("sbc_check", [("192.0.2.7", 5.0), ("2001:db8:1:2::/64", 5.0)], [])
    )
    done = subprocess.run(
        ["nft", "--check", "--file", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("nft --check needs CAP_NET_ADMIN here")
    assert done.returncode == 0, done.stderr
