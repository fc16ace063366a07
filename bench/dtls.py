"""DTLS-SRTP benchmark: full handshakes/s between two of our sans-IO endpoints.

Each handshake is the whole RFC 5764 exchange in memory (ECDHE-ECDSA P-256,
both certificates checked against their fingerprints, SRTP keys exported),
so one figure costs both ends' CPU: a relay doing only its own end manages
roughly twice as many. The node certificate is made once, as in the SBC;
``cert_ms`` is what that costs at start.

    python bench/dtls.py [--handshakes 200]

Prints ONE line:
    dtls: handshakes_per_s=<both ends> cert_ms=<one certificate> profile=<negotiated suite>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbc.media.dtls import DtlsEndpoint
from sbc.media.dtls_certificate import DtlsCertificate, DtlsState


def handshake(server_cert: DtlsCertificate, client_cert: DtlsCertificate) -> str:
    server = DtlsEndpoint(server_cert, "server", (("sha-256", client_cert.fingerprint()),))
    client = DtlsEndpoint(client_cert, "client", (("sha-256", server_cert.fingerprint()),))
    client.start(0.0)
    for _ in range(10):
        for src, dst in ((client, server), (server, client)):
            for datagram in src.datagrams_to_send():
                dst.receive_datagram(datagram, 0.0)
    if client.state is not DtlsState.CONNECTED or server.keys is None:
        raise SystemExit(f"handshake failed: {client.failure or server.failure}")
    return server.keys.suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    server_cert = DtlsCertificate.generate()
    cert_ms = (time.perf_counter() - start) * 1000
    client_cert = DtlsCertificate.generate()
    suite = handshake(server_cert, client_cert)  # warm the SSL context cache
    start = time.perf_counter()
    for _ in range(args.handshakes):
        handshake(server_cert, client_cert)
    rate = args.handshakes / (time.perf_counter() - start)
    print(f"dtls: handshakes_per_s={rate:.0f} cert_ms={cert_ms:.1f} profile={suite}")


if __name__ == "__main__":
    main()
