"""REGISTER handling through the registration relay, without sockets.

Phones (distinct users, each from its own public address, as behind many
home NATs: the relay caps bindings per source address) register through the
demo's external interface, made a relay to the carrier trunk; the carrier
answers every upstream REGISTER 200. First pass: every REGISTER is relayed
and held as pending until the registrar's 200 binds it (phone → SBC →
registrar → SBC → phone, 4 messages). Second pass: the same phones refresh
from the same address and port while their upstream bindings are fresh, and
the SBC answers them itself (2 messages). Only the time inside the core is
counted (CPU time of this thread). Prints one line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from sbc.b2bua.core import Core
from sbc.gctune import tune_gc
from sbc.log import configure_logging
from sbc.policy import load_policy
from sbc.sip.message import Request, build_response, parse_message
from sbc.sip.target import Target

ROOT = Path(__file__).resolve().parent.parent
RELAY = "    registration: {registrar: carrier, client_expires_s: 60, keepalive_s: 25}\n"


def relay_policy(directory: Path) -> Path:
    shutil.copytree(ROOT / "policies", directory)
    (directory / "manipulations.yaml").unlink()
    (directory / "security.yaml").write_text("rate_limits: {per_source: {REGISTER: null}}\n")
    text = (directory / "interfaces.yaml").read_text()
    marker = (
        "    media_ports: [20000, 29999]  # inclusive RTP/RTCP port range; start must be even\n"
    )
    (directory / "interfaces.yaml").write_text(text.replace(marker, marker + RELAY, 1))
    return directory


def register(n: int, seq: int) -> bytes:
    return (
        f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.168.{n // 250}.{n % 250}:5060;branch=z9hG4bK-{n}-{seq};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:u{n}@example.net>;tag=t{n}\r\n"
        f"To: <sip:u{n}@example.net>\r\nCall-ID: reg-{n}@phone\r\nCSeq: {seq} REGISTER\r\n"
        f"Contact: <sip:u{n}@192.168.{n // 250}.{n % 250}:5060>\r\nExpires: 3600\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def phone_source(n: int) -> Target:
    return Target("external", "udp", f"127.1.{n // 250}.{n % 250 + 1}", 10000 + n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=5000)
    args = parser.parse_args()
    configure_logging("warning", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    tune_gc()
    with tempfile.TemporaryDirectory() as scratch:
        core = Core(load_policy(relay_policy(Path(scratch) / "policies")))
    carrier = Target("external", "udp", "127.0.0.10", 5060)
    now, relayed_s, absorbed_s = 1.0, 0.0, 0.0
    for n in range(args.phones):
        phone = phone_source(n)
        start = time.thread_time()
        out = core.receive(register(n, 1), phone, now)
        upstream = parse_message(out[0].data)
        assert isinstance(upstream, Request), out
        assert upstream.method == "REGISTER", out
        answer = build_response(upstream, 200, to_tag="reg").serialize()
        back = core.receive(answer, carrier, now)
        relayed_s += time.thread_time() - start
        assert back, "no answer to the phone"
        assert back[0].target == phone, back
    now += 30.0
    for n in range(args.phones):
        phone = phone_source(n)
        start = time.thread_time()
        out = core.receive(register(n, 2), phone, now)
        absorbed_s += time.thread_time() - start
        assert len(out) == 1, out
        assert out[0].data.startswith(b"SIP/2.0 200"), out
    print(
        f"registrations: relayed_per_s={args.phones / relayed_s:.0f}"
        f" absorbed_per_s={args.phones / absorbed_s:.0f} ({args.phones} phones; relayed ="
        f" REGISTER in, upstream REGISTER out, 200 in, 200 out; absorbed = a refresh answered"
        f" locally; core CPU time)"
    )


if __name__ == "__main__":
    main()
