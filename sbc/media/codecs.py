"""Which codecs an SDP body settles on: for CDRs and the admin plane.

A line scan, not a full parse: it runs once per answered call on the
signalling path, and needs only ``m=`` formats and ``a=rtpmap`` names.
"""

from __future__ import annotations

#: RFC 3551 §6: static payload types (the ones still met in the field).
STATIC_PAYLOADS = {
    "0": "PCMU/8000",
    "3": "GSM/8000",
    "4": "G723/8000",
    "8": "PCMA/8000",
    "9": "G722/8000",
    "13": "CN/8000",
    "18": "G729/8000",
}


def codecs_of(body: bytes) -> tuple[str, ...]:
    """``encoding/clock`` of every format of every accepted stream, in order.

    In an answer that is what the call uses (RFC 3264 §6.1: the answerer
    lists the formats it will send and receive). Text that is not SDP gives ().
    """
    codecs: list[str] = []
    streams: list[tuple[list[str], dict[str, str]]] = []
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            accepted = len(parts) >= 4 and parts[1] != "0"  # port 0: rejected (RFC 3264 §6)
            streams.append((parts[3:] if accepted else [], {}))
        elif line.startswith("a=rtpmap:") and streams:
            payload, _, name = line[9:].partition(" ")
            streams[-1][1][payload] = "/".join(name.strip().split("/")[:2])
    for formats, names in streams:
        for fmt in formats:
            found = names.get(fmt) or STATIC_PAYLOADS.get(fmt)
            if found is not None and found not in codecs:
                codecs.append(found)
    return tuple(codecs)
