"""Policy text that ends up on the wire cannot carry a line break, and the
parser's header limits are settings: each refused at its ``file:line``."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import ROUTES, TRUNKS, WritePolicy

from sbc.policy import PolicyError, load_policy
from sbc.sip.head import HeadLimits

CONTROL = "control characters (CR, LF, NUL...) are not allowed: this text goes on the wire"


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    return [str(issue) for issue in caught.value.issues]


CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    "user agent with CRLF": (
        {"sbc": 'sip:\n  user_agent: "sbc\\r\\nX-Injected: 1"\n'},
        [f"sbc.yaml:2: sip.user_agent: {CONTROL}"],
    ),
    "reject reason with a bare CR": (
        {
            "routes": ROUTES
            + '  - name: barred\n    reject: {status: 403, reason: "No\\rX-Injected: 1"}\n'
        },
        [f"routes.yaml:9: routes[2].reject.reason: {CONTROL}"],
    ),
    "translation whose text is a NUL": (
        {
            "routes": ROUTES.replace(
                "to: [pbx]", 'to: [pbx]\n    translate: {regex: "^00", replacement: "\\0"}'
            )
        },
        [f"routes.yaml:5: routes[0].translate.replacement: {CONTROL}"],
    ),
    "translation whose escape expands to a CR": (
        {
            "routes": ROUTES.replace(
                "to: [pbx]", "to: [pbx]\n    translate: {regex: '^(00)', replacement: '\\1\\r'}"
            )
        },
        [
            "routes.yaml:5: routes[0].translate.replacement: the replacement"
            " expands to a control character (CR, LF, NUL...): this text goes on the wire"
        ],
    ),
    "credentials and registration users": (
        {
            "trunks": TRUNKS.replace(
                "address: 127.0.0.10",
                "address: 127.0.0.10\n"
                '    auth: {username: "a\\nb", password: {env: SBC_TEST_SECRET}, realm: "r\\0"}\n'
                '    register: {aor_user: "1\\r", contact_user: "c\\x1b"}',
            )
        },
        [
            f"trunks.yaml:5: trunks[0].auth.username: {CONTROL}",
            f"trunks.yaml:5: trunks[0].auth.realm: {CONTROL}",
            f"trunks.yaml:6: trunks[0].register.aor_user: {CONTROL}",
            f"trunks.yaml:6: trunks[0].register.contact_user: {CONTROL}",
        ],
    ),
    "manipulation replacements whose escapes expand to CR and NUL": (
        {
            "manipulations": "manipulations:\n  - trunk: carrier\n    direction: inbound\n"
            "    rules:\n"
            "      - rewrite: {header: Subject, regex: 'a', replacement: 'b\\r'}\n"
            "      - rewrite_user: {target: ruri, regex: '^(1)', replacement: '\\1\\0'}\n"
        },
        [
            "manipulations.yaml:5: manipulations[0].rules[0].rewrite.replacement: the"
            " replacement expands to a control character (CR, LF, NUL...): this text goes"
            " on the wire",
            "manipulations.yaml:6: manipulations[0].rules[1].rewrite_user.replacement: the"
            " replacement expands to a control character (CR, LF, NUL...): this text goes"
            " on the wire",
        ],
    ),
    "header limits too small": (
        {"sbc": "sip:\n  max_headers: 10\n  max_header_line: 100\n"},
        [
            "sbc.yaml:2: sip.max_headers: Input should be greater than or equal to 32",
            "sbc.yaml:3: sip.max_header_line: Input should be greater than or equal to 256",
        ],
    ),
}


@pytest.mark.parametrize(("files", "expected"), CASES.values(), ids=CASES.keys())
def test_wire_text_and_limits_are_refused_at_their_line(
    write_policy: WritePolicy,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    expected: list[str],
) -> None:
    monkeypatch.setenv("SBC_TEST_SECRET", "s3cret")
    assert issues_of(write_policy(**files)) == expected


def test_header_limits_default_and_configured(write_policy: WritePolicy) -> None:
    assert load_policy(write_policy()).settings.sip.head_limits == HeadLimits(256, 8192)
    directory = write_policy(sbc="sip:\n  max_headers: 64\n  max_header_line: 2048\n")
    assert load_policy(directory).settings.sip.head_limits == HeadLimits(64, 2048)


def test_tab_stays_allowed_in_wire_text(write_policy: WritePolicy) -> None:
    """HTAB is LWS (RFC 3261 §25.1), valid inside a header value."""
    policy = load_policy(write_policy(sbc='sip:\n  user_agent: "sbc\\t1.0"\n'))
    assert policy.settings.sip.user_agent == "sbc\t1.0"
