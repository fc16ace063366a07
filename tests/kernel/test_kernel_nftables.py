"""libnftables through ctypes, and counters over netlink: message layouts, then the
real kernel (root only): a table owned by its context, counters read back."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from sbc.kernel.netlink import (
    NFNL_SUBSYS_NFTABLES,
    NFT_MSG_GETOBJ,
    NFT_MSG_NEWOBJ,
    NetlinkError,
    counter_packets,
    get_counter_request,
    read_counters,
)
from sbc.kernel.nftables import Nftables, NftablesError, NftablesUnavailableError


def attribute(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 1, 0) + body


def test_the_request_names_table_counter_and_type() -> None:
    request = get_counter_request("sbc_7", "banned", 3)
    size, kind, flags, sequence, _ = struct.unpack_from("=IHHII", request)
    assert (size, kind, flags, sequence) == (len(request), 10 << 8 | NFT_MSG_GETOBJ, 1, 3)
    assert request[16:20] == bytes([1, 0, 0, 0])  # NFPROTO_INET, NFNETLINK_V0
    assert attribute(1, b"sbc_7\0") in request
    assert attribute(2, b"banned\0") in request
    assert attribute(3, struct.pack("!I", 1)) in request  # NFT_OBJECT_COUNTER


def test_the_reply_gives_the_packet_count() -> None:
    counter = attribute(1, struct.pack("!Q", 999)) + attribute(2, struct.pack("!Q", 42))
    body = bytes([1, 0, 0, 0]) + attribute(1, b"t\0") + attribute(4 | 0x8000, counter)
    assert counter_packets(message(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWOBJ, body)) == 42


def test_an_error_reply_raises_with_its_errno() -> None:
    with pytest.raises(NetlinkError) as caught:
        counter_packets(message(2, struct.pack("=i", -2) + b"\0" * 16))
    assert caught.value.errno == 2
    with pytest.raises(NetlinkError):
        counter_packets(b"\0" * 4)


def test_errors_are_cut_short() -> None:
    """libnftables echoes the failing command: a batch of bans must not land in the log."""
    error = NftablesError("Error: boom\nadd element inet t banned4_32 { " + "1.2.3.4, " * 10_000)
    assert str(error).startswith("Error: boom\nadd element")
    assert len(str(error)) <= 403
    assert not error.permission_denied
    assert NftablesError("Error: Operation not permitted").permission_denied


def test_a_missing_library_is_reported() -> None:
    with pytest.raises(NftablesUnavailableError):
        Nftables("libnftables-does-not-exist.so.9")


def kernel_available() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        Nftables().close()
    except NftablesError:
        return False
    return True


needs_kernel = pytest.mark.skipif(not kernel_available(), reason="needs root and libnftables")


@needs_kernel
def test_an_owned_table_goes_with_its_context() -> None:
    table = f"sbc_test_{os.getpid()}"
    nft = Nftables()
    nft.run(
        f"table inet {table} {{ flags owner\n counter banned {{ }}\n"
        " set b { type ipv4_addr; flags timeout; }\n"
        " chain c { type filter hook prerouting priority raw; policy accept;\n"
        '  ip saddr @b udp dport 9 counter name "banned" drop\n }\n}\n'
    )
    nft.run(f"add element inet {table} b {{ 127.0.0.66 timeout 60s }}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.66", 0))
        for _ in range(5):
            sender.sendto(b"x", ("127.0.0.1", 9))
    assert read_counters(table, ["banned"]) == {"banned": 5}
    listing = nft.run_json(f"list set inet {table} b")
    assert "127.0.0.66" in str(listing)
    with pytest.raises(NftablesError, match="No such file"):
        nft.run(f"delete element inet {table} b {{ 127.0.0.67 }}")
    nft.close()
    with pytest.raises(NetlinkError):
        read_counters(table, ["banned"])  # the table went with its owner
    with pytest.raises(NftablesError, match="closed"):
        nft.run("list tables")
