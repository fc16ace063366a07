"""The runtime's screen for the transport: asked once per inbound connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sbc.app import Runtime
from sbc.policy import load_policy
from sbc.transport import Screening

POLICIES = Path(__file__).resolve().parents[1] / "policies"


def test_bans_acl_and_trunks_decide_a_connecting_source() -> None:
    runtime = Runtime(load_policy(POLICIES), POLICIES)
    loop = asyncio.new_event_loop()
    try:
        runtime._loop = loop  # the screen reads the runtime's clock
        screen = runtime._screen_source
        assert screen("127.0.0.10", "external") is Screening.TRUNK  # the carrier
        assert screen("127.0.0.10", "internal") is Screening.STRANGER  # not its interface
        assert screen("127.0.0.66", "external") is Screening.STRANGER
        assert screen("192.0.2.7", "external") is Screening.REFUSE  # the shipped ACL deny
        assert screen("10.1.2.3", "internal") is Screening.REFUSE  # not in internal's allow
        runtime.core.guard.ban("127.0.0.66", loop.time())
        assert screen("127.0.0.66", "external") is Screening.REFUSE
    finally:
        loop.close()
