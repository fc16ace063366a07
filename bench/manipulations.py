"""Manipulation benchmark: a carrier INVITE through a ten-rule set.

Prints one line:
    manipulations: <N> msg/s through 10 rules (<k> applied per message), baseline copy <N> msg/s

Each message is a fresh copy of one parsed INVITE (the rules edit in place);
``baseline`` times the copy alone, so the cost of the rules is the difference.
The rules are the typical jobs: E.164 to national on Request-URI, To and From,
X-* removal, PAI removal and re-assertion, Diversion and History-Info. Compare
ratios within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sbc.policy.manipulation_schema import ManipulationsFile
from sbc.policy.manipulations import compile_manipulations
from sbc.sip.message import Request, parse_message

E164 = {"regex": r"^\+1([2-9]\d{2}[2-9]\d{6})$", "replacement": r"\1"}
RULES = [
    {"messages": "both", "remove": {"header": "X-*"}},
    {"methods": ["INVITE"], "rewrite_user": {"target": "ruri", **E164}},
    {"rewrite_user": {"target": "to", **E164}},
    {"rewrite_user": {"target": "from", **E164}},
    {"remove": {"header": "P-Preferred-Identity"}},
    {"remove": {"header": "P-Asserted-Identity"}},
    {
        "header_absent": "P-Asserted-Identity",
        "add": {"header": "P-Asserted-Identity", "value": "<sip:{from_user}@sbc.example.net>"},
    },
    {
        "header_matches": {"header": "From", "regex": r"(?i)sip:anonymous@"},
        "replace": {"header": "Privacy", "value": "id"},
    },
    {"rewrite": {"header": "Diversion", "regex": r"sip:\+1(\d{10})@", "replacement": r"sip:\1@"}},
    {
        "header_present": "Diversion",
        "replace": {"header": "History-Info", "value": "<sip:{to_user}@sbc.example.net>;index=1"},
    },
]

INVITE = (
    b"INVITE sip:+12125550123@127.0.0.1:5060;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-5235-1-0;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Carrier" <sip:+13105550199@192.0.2.10:5060>;tag=5235SIPpTag001\r\n'
    b"To: <sip:+12125550123@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-5235@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:sipp@192.0.2.10:5060;transport=udp>\r\n"
    b"P-Asserted-Identity: <sip:+13105550199@192.0.2.10>\r\n"
    b"Diversion: <sip:+12125550100@192.0.2.10>;reason=unconditional\r\n"
    b"X-Carrier-Billing: 42\r\n"
    b"Supported: timer, 100rel\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def rate(func: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls per second of ``func`` over about ``seconds``."""
    count = 0
    batch = 200
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            func()
        count += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def main() -> None:
    data = {"manipulations": [{"trunk": "carrier", "direction": "inbound", "rules": RULES}]}
    rules = compile_manipulations(ManipulationsFile.model_validate(data))
    template = parse_message(INVITE)
    assert isinstance(template, Request)

    def fresh() -> Request:
        return Request(template.method, template.uri, template.headers.copy(), template.body)

    applied = rules.apply(fresh(), "carrier", "inbound")
    assert applied >= 8, f"the benchmark message must exercise the rules ({applied} applied)"
    through = rate(lambda: rules.apply(fresh(), "carrier", "inbound"))
    baseline = rate(fresh)
    print(
        f"manipulations: {through:.0f} msg/s through {rules.rule_count} rules"
        f" ({applied} applied per message), baseline copy {baseline:.0f} msg/s"
    )


if __name__ == "__main__":
    main()
