from __future__ import annotations

import pytest
from peers import FakeUA, Net


@pytest.fixture
def net() -> Net:
    return Net()


@pytest.fixture(params=["carrier->pbx", "pbx->carrier"])
def ends(request: pytest.FixtureRequest, net: Net) -> tuple[FakeUA, FakeUA]:
    """(caller, callee) in both directions."""
    if request.param == "carrier->pbx":
        return net.carrier, net.pbx
    return net.pbx, net.carrier
