"""``transport:`` in ``sbc.yaml``: edge limits, their defaults and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from policy_samples import WritePolicy

from sbc.app import transport_limits
from sbc.policy import PolicyError, TransportSettings, load_policy
from sbc.transport import TransportLimits

SHIPPED = Path(__file__).resolve().parents[2] / "policies" / "sbc.yaml"


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_are_the_transports_own() -> None:
    """One set of production defaults: the schema's become the transport's unchanged."""
    assert transport_limits(TransportSettings()) == TransportLimits()


def test_shipped_file_spells_out_the_defaults() -> None:
    shipped = yaml.safe_load(SHIPPED.read_text())["transport"]
    assert shipped == TransportSettings().model_dump()


def test_values_reach_the_transport(write_policy: WritePolicy) -> None:
    policy = load_policy(
        write_policy(
            sbc="transport:\n  max_connections_per_source: 4\n  message_timeout_s: 2\n"
            "  max_udp_message: 4096\n"
        )
    )
    limits = transport_limits(policy.settings.transport)
    assert limits.max_connections_per_source == 4
    assert limits.message_timeout == 2.0
    assert limits.max_udp_message == 4096


def test_bad_values_are_refused_with_their_line(write_policy: WritePolicy) -> None:
    directory = write_policy(
        sbc="transport:\n  max_udp_message: 100\n  max_connections: 10\n"
        "  reserved_outbound_connections: 10\n  message_timeout_s: 0\n  bogus: 1\n"
    )
    assert issues_of(directory) == [
        "sbc.yaml:2: transport.max_udp_message: Input should be greater than or equal to 1024",
        "sbc.yaml:5: transport.message_timeout_s: Input should be greater than 0",
        "sbc.yaml:6: transport.bogus: Extra inputs are not permitted",
    ]
    directory = write_policy(
        sbc="transport:\n  max_connections: 10\n  reserved_outbound_connections: 10\n"
    )
    assert issues_of(directory) == [
        "sbc.yaml:1: transport: reserved_outbound_connections (10) must be below"
        " max_connections (10)"
    ]
