"""Broken policies: every problem is reported, each with its exact ``file:line: message``."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import INTERFACES, ROUTES, TRUNKS, WritePolicy

from sbc.policy import PolicyError, PolicyIssue, load_policy


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    return [str(issue) for issue in caught.value.issues]


CASES: dict[str, tuple[dict[str, str | None], list[str]]] = {
    "yaml syntax error": (
        {"trunks": "trunks:\n  - name: carrier\n    interface: external\n   address: x\n"},
        [
            "trunks.yaml:4: invalid YAML: expected <block end>, but found"
            " '<block mapping start>' (while parsing a block collection)"
        ],
    ),
    "unclosed flow sequence": (
        {"routes": "routes:\n  - name: r\n    to: [pbx\n"},
        [
            "routes.yaml:4: invalid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence)"
        ],
    ),
    "tab indentation": (
        {"trunks": "trunks:\n\t- name: x\n"},
        [
            "trunks.yaml:2: invalid YAML: found character '\\t' that cannot start any token"
            " (while scanning for the next token)"
        ],
    ),
    "two documents": (
        {"trunks": TRUNKS + "---\ntrunks: []\n"},
        [
            "trunks.yaml:8: invalid YAML: expected a single document in the stream,"
            " but found another document"
        ],
    ),
    "python tag refused": (
        {"sbc": "sip: !!python/object/apply:os.system [true]\n"},
        [
            "sbc.yaml:1: invalid YAML: could not determine a constructor for the tag"
            " 'tag:yaml.org,2002:python/object/apply:os.system'"
        ],
    ),
    "control character": (
        {"trunks": "trunks: []\x00\n"},
        [
            "trunks.yaml:1: invalid YAML: unacceptable character #x0000:"
            " special characters are not allowed"
        ],
    ),
    "nesting too deep": (
        {"routes": "routes: " + "[" * 5000},
        ["routes.yaml:1: invalid YAML: nesting too deep"],
    ),
    "wrong type": (
        {"trunks": TRUNKS.replace("address: 127.0.0.20", 'address: 127.0.0.20\n    port: "5060"')},
        ["trunks.yaml:8: trunks[1].port: Input should be a valid integer"],
    ),
    "port out of range": (
        {"interfaces": INTERFACES.replace("port: 5060", "port: 65536", 1)},
        ["interfaces.yaml:4: interfaces[0].port: Input should be less than or equal to 65535"],
    ),
    "unknown trunk in route": (
        {"routes": ROUTES.replace("to: [carrier]", "to: [carrier, backup]")},
        ["routes.yaml:7: routes[1].to[1]: unknown trunk 'backup' (known: carrier, pbx)"],
    ),
    "unknown trunk as route source": (
        {"routes": ROUTES.replace("from_trunk: pbx", "from_trunk: pbxx")},
        ["routes.yaml:6: routes[1].from_trunk: unknown trunk 'pbxx' (known: carrier, pbx)"],
    ),
    "unknown interface in trunk and route": (
        {
            "trunks": TRUNKS.replace("interface: internal", "interface: inside"),
            "routes": ROUTES.replace("from_trunk: pbx", "from_interface: dmz"),
        },
        [
            "trunks.yaml:6: trunks[1].interface: unknown interface 'inside'"
            " (known: external, internal)",
            "routes.yaml:6: routes[1].from_interface: unknown interface 'dmz'"
            " (known: external, internal)",
        ],
    ),
    "duplicate trunk names": (
        {"trunks": TRUNKS.replace("name: pbx", "name: carrier")},
        [
            "trunks.yaml:5: trunks[1].name: duplicate name 'carrier' (already used by trunks[0])",
            "routes.yaml:4: routes[0].to[0]: unknown trunk 'pbx' (known: carrier)",
            "routes.yaml:6: routes[1].from_trunk: unknown trunk 'pbx' (known: carrier)",
        ],
    ),
    "duplicate yaml key": (
        {
            "trunks": TRUNKS.replace(
                "address: 127.0.0.10", "address: 127.0.0.10\n    port: 1\n    port: 2"
            )
        },
        ["trunks.yaml:6: duplicate key 'port'"],
    ),
    "unknown key": (
        {"trunks": TRUNKS.replace("address: 127.0.0.10", "address: 127.0.0.10\n    prot: 5060")},
        ["trunks.yaml:5: trunks[0].prot: Extra inputs are not permitted"],
    ),
    "missing required key": (
        {"trunks": TRUNKS.replace("    address: 127.0.0.20\n", "")},
        ["trunks.yaml:5: trunks[1].address: Field required"],
    ),
    "missing file": (
        {"routes": None},
        ["routes.yaml:0: file not found"],
    ),
    "empty file": (
        {"trunks": "# nothing yet\n"},
        ["trunks.yaml:1: trunks: Field required"],
    ),
    "top level is a list": (
        {"trunks": "- carrier\n- pbx\n"},
        ["trunks.yaml:1: Input should be a mapping"],
    ),
    "entry is not a mapping": (
        {"routes": ROUTES + "  - everything-else\n"},
        ["routes.yaml:8: routes[2]: Input should be a mapping"],
    ),
    "bad addresses": (
        {
            "interfaces": INTERFACES.replace("127.0.0.2\n", "127.0.0.256\n"),
            "trunks": TRUNKS.replace("127.0.0.10", "10.0.0.300").replace(
                "address: 127.0.0.20", "address: 127.0.0.20\n    sources: [10.1.0.1/16]"
            ),
        },
        [
            "interfaces.yaml:7: interfaces[1].address: '127.0.0.256' is not a valid IP address",
            "trunks.yaml:4: trunks[0].address: '10.0.0.300' is not a valid IP address or host name",
            "trunks.yaml:8: trunks[1].sources[0]: '10.1.0.1/16' is not a valid CIDR network:"
            " 10.1.0.1/16 has host bits set",
        ],
    ),
    "bad transport and media range": (
        {
            "interfaces": INTERFACES.replace(
                "[udp, tcp]", "[udp, sctp]\n    media_ports: [3001, 3000]", 1
            )
        },
        [
            "interfaces.yaml:5: interfaces[0].transports[1]: Input should be 'udp', 'tcp' or 'tls'",
            "interfaces.yaml:6: interfaces[0].media_ports: range start 3001 is above its end 3000",
        ],
    ),
    "odd media range start": (
        {"interfaces": INTERFACES.replace("[udp, tcp]", "[udp]\n    media_ports: [3001, 4000]", 1)},
        [
            "interfaces.yaml:6: interfaces[0].media_ports: range start 3001 must be even"
            " (RTP uses even ports)"
        ],
    ),
    "overlapping interfaces": (
        {
            "interfaces": INTERFACES.replace("127.0.0.2", "0.0.0.0").replace(
                "[udp, tcp]\n", "[tcp]\n", 2
            )
        },
        [
            # media_ports is defaulted, so the issue points at the entry that lacks it
            "interfaces.yaml:6: interfaces[1].media_ports: media ports 20000-29999 on 0.0.0.0"
            " overlap interface 'external' (20000-29999)",
            "interfaces.yaml:8: interfaces[1].port: 0.0.0.0:5060/tcp overlaps interface 'external'"
            " (127.0.0.1:5060)",
        ],
    ),
    "two trunks claim one source": (
        {
            "trunks": TRUNKS
            + "  - name: carrier2\n    interface: external\n    address: 127.0.0.10\n"
        },
        [
            "trunks.yaml:10: trunks[2].address: 127.0.0.10 on interface 'external'"
            " already identifies trunk 'carrier'"
        ],
    ),
    "settings": (
        {"sbc": "sip:\n  t1_ms: 5000\n  min_se_s: 30\nlogging:\n  json: 'yes'\n  level: loud\n"},
        [
            "sbc.yaml:3: sip.min_se_s: Input should be greater than or equal to 90",
            "sbc.yaml:5: logging.json: Input should be a valid boolean",
            "sbc.yaml:6: logging.level: Input should be 'debug', 'info', 'warning' or 'error'",
        ],
    ),
    "transcoding settings": (
        {"sbc": "transcoding:\n  max_sessions: -1\n  opus_complexity: 11\n"},
        [
            "sbc.yaml:2: transcoding.max_sessions: Input should be greater than or equal to 0",
            "sbc.yaml:3: transcoding.opus_complexity: Input should be less than or equal to 10",
        ],
    ),
    "registration relay caps": (
        {
            "interfaces": INTERFACES.replace(
                "    transports: [udp, tcp]\n  - name: internal",
                "    transports: [udp, tcp]\n    registration:\n      registrar: carrier\n"
                "      max_pending: 0\n  - name: internal",
            )
            + "    registration: {registrar: pbx, max_bindings: 10, max_bindings_per_source: 20}\n"
        },
        [
            "interfaces.yaml:8: interfaces[0].registration.max_pending:"
            " Input should be greater than or equal to 1",
            "interfaces.yaml:13: interfaces[1].registration: max_bindings_per_source"
            " must not exceed max_bindings",
        ],
    ),
    "media settings": (
        {"sbc": "media:\n  max_streams: 0\n"},
        ["sbc.yaml:2: media.max_streams: Input should be greater than or equal to 1"],
    ),
    "settings consistency": (
        {"sbc": "sip:\n  t1_ms: 5000\ncalls: {}\n"},
        ["sbc.yaml:1: sip: t2_ms (4000) must be at least t1_ms (5000)"],
    ),
}


@pytest.mark.parametrize(("files", "expected"), CASES.values(), ids=CASES.keys())
def test_broken_policy_reports_exact_lines(
    write_policy: WritePolicy, files: dict[str, str | None], expected: list[str]
) -> None:
    assert issues_of(write_policy(**files)) == expected


def test_errors_in_every_file_are_all_reported_in_file_order(write_policy: WritePolicy) -> None:
    directory = write_policy(
        sbc="calls:\n  shutdown_grace_s: -1\n",
        routes=ROUTES.replace("to: [pbx]", "to: []"),
        trunks=TRUNKS.replace("interface: external", "interface: 7"),
        interfaces=INTERFACES.replace("name: internal", "name: internal\n    colour: red"),
    )
    assert issues_of(directory) == [
        "interfaces.yaml:7: interfaces[1].colour: Extra inputs are not permitted",
        "trunks.yaml:3: trunks[0].interface: Input should be a valid string",
        "routes.yaml:4: routes[0].to:"
        " a route needs 'to' (at least one trunk), 'to_registered' or 'reject'",
        "sbc.yaml:2: calls.shutdown_grace_s: Input should be greater than or equal to 0",
    ]


def test_broken_entry_name_still_counts_as_known(write_policy: WritePolicy) -> None:
    """A typo in the pbx trunk must not also make every route to it 'unknown'."""
    directory = write_policy(trunks=TRUNKS.replace("127.0.0.20", "nope!"))
    assert issues_of(directory) == [
        "trunks.yaml:7: trunks[1].address: 'nope!' is not a valid IP address or host name"
    ]


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    assert issues_of(missing) == [f"{missing}:0: policy directory not found"]


def test_directory_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("x: 1\n")
    assert issues_of(file) == [f"{file}:0: not a directory"]


def test_undecodable_file(write_policy: WritePolicy) -> None:
    directory = write_policy()
    (directory / "trunks.yaml").write_bytes(b"trunks: [\xff]\n")
    assert issues_of(directory) == ["trunks.yaml:0: file is not valid UTF-8: invalid start byte"]


def test_unknown_files_are_ignored(write_policy: WritePolicy) -> None:
    directory = write_policy()
    (directory / "notes.yaml").write_text(": not even yaml [\n")
    assert len(load_policy(directory).trunks) == 2


def test_issue_and_error_formatting() -> None:
    issue = PolicyIssue("trunks.yaml", 14, "trunks[1].port: Input should be at most 65535")
    error = PolicyError([issue, PolicyIssue("routes.yaml", 0, "file not found")])
    assert str(issue) == "trunks.yaml:14: trunks[1].port: Input should be at most 65535"
    assert str(error) == f"{issue}\nroutes.yaml:0: file not found"
