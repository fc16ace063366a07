"""Records for the CDR tests: every field set to something distinct."""

from __future__ import annotations

from sbc.cdr.record import CdrRecord, Disposition, HangupBy, MediaFigures

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def full_record(n: int = 1, **changes: object) -> CdrRecord:
    """A closed, answered call with no field left at its default."""
    start = T0 + n
    values: dict[str, object] = {
        "id": f"call-{n}",
        "a_call_id": f"{n}-5235@192.0.2.10",
        "b_call_id": f"b2b-{n}",
        "a_local_tag": f"al{n}",
        "a_remote_tag": f"ar{n}",
        "b_local_tag": f"bl{n}",
        "b_remote_tag": f"br{n}",
        "ingress_trunk": "carrier",
        "egress_trunk": "pbx",
        "ingress_interface": "external",
        "egress_interface": "internal",
        "route": "to-pbx",
        "calling": "+13105550199",
        "called": "2125550123",
        "start": start,
        "ring": start + 0.25,
        "answer": start + 1.5,
        "end": start + 61.5,
        "final_status": 200,
        "disposition": Disposition.ANSWERED,
        "hangup_by": HangupBy.CALLER,
        "end_reason": "caller hung up",
        "codecs": "PCMU/8000,telephone-event/8000",
        "failovers": 1,
        "a_to_b": MediaFigures(3000, 516000, 4, 1.25, 6, 2.5),
        "b_to_a": MediaFigures(2990, 514280, 7, 3.75, 9, 4.125),
    }
    values.update(changes)
    return CdrRecord(**values)  # type: ignore[arg-type]


def open_record(n: int = 1, **changes: object) -> CdrRecord:
    """A call that has just started."""
    values: dict[str, object] = {
        "id": f"call-{n}",
        "a_call_id": f"{n}-5235@192.0.2.10",
        "ingress_trunk": "carrier",
        "egress_trunk": "pbx",
        "calling": "+13105550199",
        "called": "2125550123",
        "start": T0 + n,
    }
    values.update(changes)
    return CdrRecord(**values)  # type: ignore[arg-type]
