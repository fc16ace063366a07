"""Ended calls leave nothing behind for the cyclic GC: reference counting
frees them (the runtime relies on it to keep full GC passes off the hot path)."""

from __future__ import annotations

import gc

from peers import Net, established


def test_ended_calls_form_no_cycles(net: Net) -> None:
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            a, _ = established(net, net.carrier, net.pbx)
            net.carrier.request(a, "BYE")
            bye = net.pbx.take_request("BYE")
            net.pbx.respond(bye, 200)
        net.advance(64.0)
        assert not net.core.calls
        assert len(net.core.layer) == 0
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        garbage = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, garbage[:20]
