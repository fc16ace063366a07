"""A fake AdminContext with plain data, and clients for the API built over it.

A plain module (not conftest.py) so its name cannot collide with other test folders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from sbc.admin.api import create_app
from sbc.admin.context import (
    AdminContext,
    CallView,
    LegView,
    Readiness,
    RegistrationView,
    ReloadStatus,
    Resolution,
    TrunkView,
)
from sbc.cdr import CdrQuery, CdrRecord, CdrStoreError, Disposition
from sbc.guard import Ban

TOKEN = "s3cret-Token_with.various~chars-and-more"  # at least 32 characters
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOOPBACK_URL = "http://127.0.0.1"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

TRUNKS_YAML = "trunks:\n  - name: carrier\n    address: 127.0.0.10\n"
ROUTES_YAML = "routes:\n  - name: to-pbx\n    to: [pbx]\n"
BAD_MARK = "oops"  # content holding this fails the fake validation

# Every operation the API has (the OpenAPI test checks this list is complete).
OPERATIONS = [
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/calls"),
    ("GET", "/calls/call-1"),
    ("DELETE", "/calls/call-1"),
    ("GET", "/trunks"),
    ("GET", "/policies"),
    ("GET", "/policies/trunks.yaml"),
    ("PUT", "/policies/trunks.yaml"),
    ("POST", "/policies/validate"),
    ("POST", "/routes/resolve"),
    ("GET", "/bans"),
    ("GET", "/registrations"),
    ("DELETE", "/bans/192.0.2.66"),
    ("GET", "/cdrs"),
    ("GET", "/cdrs.csv"),
    ("GET", "/openapi.json"),
]


def leg(call_id: str, trunk: str | None, *, interface: str = "external") -> LegView:
    return LegView(
        call_id=call_id,
        local_tag=f"lt-{call_id}",
        remote_tag=f"rt-{call_id}",
        trunk=trunk,
        interface=interface,
        peer="udp:127.0.0.10:5060",
        user="2125550123",
    )


def call(
    n: int, *, state: str = "CONFIRMED", a_trunk: str = "carrier", b_trunk: str = "pbx"
) -> CallView:
    return CallView(
        id=f"call-{n}",
        state=state,
        route="to-pbx",
        started=T0 + n,
        answered=T0 + n + 1 if state == "CONFIRMED" else None,
        a=leg(f"a-{n}@192.0.2.10", a_trunk),
        b=leg(f"b2b-{n}", b_trunk, interface="internal"),
        codecs=("PCMU/8000", "telephone-event/8000"),
        media={"packets": 100.0 * n, "lost": 1.0},
    )


def trunk(name: str, *, active: int = 0, max_calls: int = 0, up: bool = True) -> TrunkView:
    return TrunkView(
        name=name,
        interface="external",
        address="127.0.0.10",
        port=5060,
        transport="udp",
        up=up,
        probed=True,
        last_probe_status=200 if up else None,
        active_calls=active,
        max_calls=max_calls,
        max_cps=10.0,
    )


def cdr(n: int, **changes: Any) -> CdrRecord:
    values: dict[str, Any] = {
        "id": f"call-{n}",
        "a_call_id": f"{n}@192.0.2.10",
        "b_call_id": f"b2b-{n}",
        "ingress_trunk": "carrier",
        "egress_trunk": "pbx",
        "route": "to-pbx",
        "calling": "+13105550199",
        "called": "2125550123",
        "start": T0 + n,
        "answer": T0 + n + 1.5,
        "end": T0 + n + 61.5,
        "final_status": 200,
        "disposition": Disposition.ANSWERED,
        "end_reason": "caller hung up",
    }
    values.update(changes)
    return CdrRecord(**values)


@dataclass
class FakeContext:
    """Plain data behind the AdminContext protocol; records what it was asked to do."""

    ready: Readiness = field(default_factory=lambda: Readiness(True, True, True))
    active: dict[str, CallView] = field(default_factory=dict)
    trunk_views: list[TrunkView] = field(default_factory=list)
    files: dict[str, str] = field(
        default_factory=lambda: {"trunks.yaml": TRUNKS_YAML, "routes.yaml": ROUTES_YAML}
    )
    last_reload: ReloadStatus = field(default_factory=lambda: ReloadStatus(T0, True, (), 2, 1))
    resolution: Resolution | None = None
    ban_list: list[Ban] = field(default_factory=list)
    registration_list: list[RegistrationView] = field(default_factory=list)
    records: list[CdrRecord] = field(default_factory=list)
    store_broken: bool = False
    fail_calls: bool = False
    hung_up: list[str] = field(default_factory=list)
    unbanned: list[str] = field(default_factory=list)
    asked_files: list[str] = field(default_factory=list)
    written: list[tuple[str, str]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    queries: list[CdrQuery] = field(default_factory=list)

    def readiness(self) -> Readiness:
        return self.ready

    def calls(self) -> Sequence[CallView]:
        if self.fail_calls:
            raise RuntimeError("secret internal detail")
        return list(self.active.values())

    def call(self, call_id: str) -> CallView | None:
        return self.active.get(call_id)

    def hangup(self, call_id: str) -> bool:
        if call_id not in self.active:
            return False
        self.hung_up.append(call_id)
        return True

    def trunks(self) -> Sequence[TrunkView]:
        return self.trunk_views

    def policy_files(self) -> Sequence[str]:
        return list(self.files)

    def read_policy(self, name: str) -> str | None:
        self.asked_files.append(name)
        return self.files.get(name)

    def validate_policy(self, name: str, text: str) -> Sequence[str]:
        self.asked_files.append(name)
        return [f"{name}:2: {BAD_MARK} is not a field"] if BAD_MARK in text else []

    async def write_policy(self, name: str, text: str) -> ReloadStatus:
        issues = tuple(self.validate_policy(name, text))
        if issues:
            return ReloadStatus(None, False, issues, 2, 1)
        self.files[name] = text
        self.written.append((name, text))
        return ReloadStatus(T0 + 100, True, (), 3, 1)

    def reload_status(self) -> ReloadStatus:
        return self.last_reload

    def resolve(  # keyword-only, as the API calls it (and as the runtime's facade is)
        self,
        *,
        method: str,
        source: str,
        interface: str,
        request_uri: str,
        from_uri: str,
        headers: Mapping[str, str],
    ) -> Resolution:
        self.resolved.append(
            {
                "method": method,
                "source": source,
                "interface": interface,
                "request_uri": request_uri,
                "from_uri": from_uri,
                "headers": dict(headers),
            }
        )
        if self.resolution is None:
            raise ValueError(f"unknown interface {interface!r}")
        return self.resolution

    def registrations(self) -> Sequence[RegistrationView]:
        return self.registration_list

    def bans(self) -> Sequence[Ban]:
        return self.ban_list

    def unban(self, source: str) -> bool:
        self.unbanned.append(source)
        before = len(self.ban_list)
        self.ban_list = [ban for ban in self.ban_list if ban.source != source]
        return len(self.ban_list) < before

    async def cdrs(self, query: CdrQuery) -> Sequence[CdrRecord]:
        self.queries.append(query)
        matching = self._matching(query)
        after = query.after_key()
        if after is not None:
            matching = [r for r in matching if (r.start, r.id) < after]
        return matching[query.offset : query.offset + query.limit]

    async def cdr_count(self, query: CdrQuery) -> int:
        return len(self._matching(query))

    def _matching(self, query: CdrQuery) -> list[CdrRecord]:
        if self.store_broken:
            raise CdrStoreError("database disk image is malformed")
        found = [r for r in self.records if _matches(r, query)]
        return sorted(found, key=lambda r: (r.start, r.id), reverse=True)


def _matches(record: CdrRecord, query: CdrQuery) -> bool:
    if query.since is not None and record.start < query.since:
        return False
    if query.until is not None and record.start >= query.until:
        return False
    if query.trunk is not None and query.trunk not in (record.ingress_trunk, record.egress_trunk):
        return False
    if query.disposition is not None and record.disposition != query.disposition:
        return False
    if query.number is not None:
        numbers = (record.calling, record.called)
        if query.prefix:
            return any(number.startswith(query.number) for number in numbers)
        return query.number in numbers
    return True


def client(
    ctx: FakeContext | None = None,
    *,
    token: str | None = TOKEN,
    authorized: bool = True,
    **kwargs: Any,
) -> TestClient:
    """A client for the API over ``ctx``, carrying the right token unless told otherwise."""
    context: AdminContext = ctx if ctx is not None else FakeContext()
    app = create_app(context, token=token, **kwargs)
    headers = AUTH if token is not None and authorized else {}
    # Server exceptions raised in the test: an escaped one is a bug, never a 500 to accept.
    return TestClient(app, base_url=LOOPBACK_URL, headers=headers, raise_server_exceptions=True)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert body["title"]
    return body
