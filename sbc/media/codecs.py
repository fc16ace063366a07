"""Which codecs an SDP body settles on: for CDRs and the admin plane."""

from __future__ import annotations

from sbc.sip.sdp import SdpError, parse_sdp

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
    lists the formats it will send and receive). Unparseable SDP gives ().
    """
    try:
        session = parse_sdp(body)
    except SdpError:
        return ()
    codecs: list[str] = []
    for media in session.media:
        media.session = None  # break the back-reference: freed by refcount, not the GC
        if media.is_rejected:
            continue
        names = media.rtpmap
        for fmt in media.formats:
            name = names.get(fmt) or STATIC_PAYLOADS.get(fmt)
            if name is not None and name not in codecs:
                codecs.append(name)
    return tuple(codecs)
