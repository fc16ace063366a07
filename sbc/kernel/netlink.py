"""Reading named nftables counters straight over netlink.

libnftables 1.0.6 fetches every element of every set in the table before it
lists anything, even one counter: with 10,000 bans or metered sources that
is 20 ms, with 100,000 over half a second, on the event loop, at every
scrape. One ``NFT_MSG_GETOBJ`` request per counter costs tens of
microseconds whatever the sets hold, so counters are read here, with the
message layouts of ``linux/netlink.h``, ``linux/netfilter/nfnetlink.h`` and
``linux/netfilter/nf_tables.h``.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETOBJ = 19
NFT_MSG_NEWOBJ = 18
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 0x2
NFPROTO_INET = 1
NFT_OBJECT_COUNTER = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
# enum nft_object_attributes, enum nft_counter_attributes
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFTA_COUNTER_PACKETS = 2

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_GENERIC = struct.Struct("=BBH")  # struct nfgenmsg (res_id is big-endian, and 0)
_ATTRIBUTE = struct.Struct("=HH")  # struct nlattr
_TIMEOUT_S = 1.0


class NetlinkError(OSError):
    """The kernel answered with an error (``errno`` set), or nothing it should have."""


def _attribute(kind: int, payload: bytes) -> bytes:
    size = _ATTRIBUTE.size + len(payload)
    return _ATTRIBUTE.pack(size, kind) + payload + b"\0" * (-size % 4)


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    offset = 0
    while offset + _ATTRIBUTE.size <= len(data):
        size, kind = _ATTRIBUTE.unpack_from(data, offset)
        if size < _ATTRIBUTE.size:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + _ATTRIBUTE.size : offset + size]
        offset += size + (-size % 4)
    return found


def get_counter_request(table: str, name: str, sequence: int) -> bytes:
    """``NFT_MSG_GETOBJ`` for the counter ``name`` of ``inet table``."""
    body = (
        _GENERIC.pack(NFPROTO_INET, 0, 0)
        + _attribute(NFTA_OBJ_TABLE, table.encode() + b"\0")
        + _attribute(NFTA_OBJ_NAME, name.encode() + b"\0")
        + _attribute(NFTA_OBJ_TYPE, struct.pack("!I", NFT_OBJECT_COUNTER))
    )
    kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETOBJ
    return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST, sequence, 0) + body


def counter_packets(reply: bytes) -> int:
    """Packets of the counter in a ``NFT_MSG_NEWOBJ`` reply; :class:`NetlinkError` otherwise."""
    if len(reply) < _HEADER.size:
        raise NetlinkError("short netlink reply")
    _, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", reply, _HEADER.size)
        raise NetlinkError(-error, os.strerror(-error))
    if kind != NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWOBJ:
        raise NetlinkError(f"unexpected netlink message type {kind:#x}")
    attributes = _attributes(reply[_HEADER.size + _GENERIC.size :])
    counter = _attributes(attributes.get(NFTA_OBJ_DATA, b""))
    packets = counter.get(NFTA_COUNTER_PACKETS)
    if packets is None or len(packets) != 8:
        raise NetlinkError("no packet count in the reply")
    value: int = struct.unpack("!Q", packets)[0]
    return value


def read_counters(table: str, names: Iterable[str]) -> dict[str, int]:
    """Packets counted by each named counter of ``inet table``."""
    counts = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.settimeout(_TIMEOUT_S)
        sock.bind((0, 0))
        for sequence, name in enumerate(names, start=1):
            sock.send(get_counter_request(table, name, sequence))
            counts[name] = counter_packets(sock.recv(65_536))
    return counts
