"""The shipped demo policy loads and answers the runtime's two questions."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import INTERFACES, TRUNKS, WritePolicy, context

from sbc.policy import Policy, Trunk, load_policy

SHIPPED = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def demo() -> Policy:
    return load_policy(SHIPPED)


def test_demo_interfaces(demo: Policy) -> None:
    external, internal = demo.interfaces["external"], demo.interfaces["internal"]
    assert (external.address, external.port, external.media_address) == (
        "127.0.0.1",
        5060,
        "127.0.0.1",
    )
    assert (internal.address, internal.port, internal.media_address) == (
        "127.0.0.2",
        5060,
        "127.0.0.2",
    )
    assert external.transports == internal.transports == frozenset({"udp", "tcp"})
    assert external.advertised_address == "127.0.0.1"
    assert external.media_ports == (20000, 29999)


def test_demo_trunks(demo: Policy) -> None:
    carrier, pbx = demo.trunks["carrier"], demo.trunks["pbx"]
    assert (carrier.interface, carrier.address, carrier.port, carrier.transport) == (
        "external",
        "127.0.0.10",
        5060,
        "udp",
    )
    assert (pbx.interface, pbx.address, pbx.port) == ("internal", "127.0.0.20", 5060)


def test_demo_settings_are_the_documented_defaults(demo: Policy) -> None:
    sip = demo.settings.sip
    assert (sip.t1_ms, sip.t2_ms, sip.t4_ms, sip.user_agent) == (500, 4000, 5000, "sbc")
    assert (sip.session_expires_s, sip.min_se_s, sip.tcp_idle_timeout_s) == (1800, 90, 300)
    assert demo.settings.calls.max_call_duration_s == 0
    assert demo.settings.logging.json_ is None
    assert demo.settings.media.max_streams == 8


def test_source_identifies_trunk_on_its_interface_only(demo: Policy) -> None:
    assert demo.trunk_for_source("external", "127.0.0.10") is demo.trunks["carrier"]
    assert demo.trunk_for_source("internal", "127.0.0.20") is demo.trunks["pbx"]
    assert demo.trunk_for_source("internal", "127.0.0.10") is None
    assert demo.trunk_for_source("external", "127.0.0.11") is None
    assert demo.trunk_for_source("external", "not-an-ip") is None


def test_ipv4_mapped_source_matches(demo: Policy) -> None:
    assert demo.trunk_for_source("external", "::ffff:127.0.0.10") is demo.trunks["carrier"]


def test_demo_routes(demo: Policy) -> None:
    carrier, pbx = demo.trunks["carrier"], demo.trunks["pbx"]
    route = demo.route_for(context(carrier, "external", "15551234567"))
    assert route is not None
    assert (route.name, route.to) == ("carrier-to-pbx", ("pbx",))
    back = demo.route_for(context(pbx, "internal", ""))
    assert back is not None
    assert back.to == ("carrier",)
    assert demo.route_for(context(None, "external", "1555")) is None


def test_policy_maps_are_read_only(demo: Policy) -> None:
    with pytest.raises(TypeError):
        demo.trunks["x"] = demo.trunks["pbx"]  # type: ignore[index]


def test_sources_cidr_and_exact_address_precedence(write_policy: WritePolicy) -> None:
    trunks = (
        TRUNKS.replace(
            "address: 127.0.0.10",
            "address: carrier.example.net\n    sources: [192.0.2.0/24, 2001:db8::/32]",
        )
        + "  - name: special\n    interface: external\n    address: 192.0.2.7\n"
    )
    policy = load_policy(write_policy(trunks=trunks))
    carrier, special = policy.trunks["carrier"], policy.trunks["special"]
    assert policy.trunk_for_source("external", "192.0.2.99") is carrier
    assert policy.trunk_for_source("external", "192.0.2.7") is special
    assert policy.trunk_for_source("external", "2001:db8::1") is carrier
    assert policy.trunk_for_source("external", "2001:0db8:0::1") is carrier
    assert policy.trunk_for_source("internal", "192.0.2.99") is None
    assert carrier.address == "carrier.example.net"


def test_first_matching_route_wins(write_policy: WritePolicy) -> None:
    routes = """\
routes:
  - name: emergency
    prefix: "911"
    to: [pbx]
  - name: from-carrier-on-external
    from_trunk: carrier
    from_interface: external
    prefix: "+1"
    to: [pbx, carrier]
  - name: catch-all
    to: [carrier]
"""
    policy = load_policy(write_policy(routes=routes))
    carrier, pbx = policy.trunks["carrier"], policy.trunks["pbx"]

    def name(trunk: Trunk | None, interface: str, user: str) -> str | None:
        route = policy.route_for(context(trunk, interface, user))
        return None if route is None else route.name

    assert name(pbx, "internal", "911") == "emergency"
    assert name(carrier, "external", "+15551234") == "from-carrier-on-external"
    assert name(carrier, "internal", "+15551234") == "catch-all"
    assert name(None, "external", "+15551234") == "catch-all"
    assert policy.routes[1].to == ("pbx", "carrier")


def test_settings_file_is_optional(write_policy: WritePolicy) -> None:
    assert load_policy(write_policy()).settings.sip.t1_ms == 500


def test_json_logging_flag(write_policy: WritePolicy) -> None:
    policy = load_policy(write_policy(sbc="logging:\n  json: true\n"))
    assert policy.settings.logging.json_ is True


def test_advertised_and_media_address_override(write_policy: WritePolicy) -> None:
    interfaces = INTERFACES.replace(
        "address: 127.0.0.1\n",
        "address: 127.0.0.1\n    advertised_address: 203.0.113.5\n    media_address: 127.0.0.3\n",
    )
    external = load_policy(write_policy(interfaces=interfaces)).interfaces["external"]
    assert (external.advertised_address, external.media_address) == ("203.0.113.5", "127.0.0.3")
