"""Load a policy directory all-or-nothing.

A bad edit must never reach a running SBC, and an operator fixing one must see
every problem at once. So :func:`load_policy` reads all four files, validates
each against its schema, runs the cross-file checks, and only if nothing at all
is wrong compiles the result into a :class:`~sbc.policy.compiled.Policy`.
Anything else, from a missing directory to a typo, becomes a
:class:`~sbc.policy.issues.PolicyIssue` in one :class:`~sbc.policy.issues.PolicyError`.

Files other than the four below are ignored, so operators may keep notes or
later-issue files beside them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sbc.auth.client import DigestCredentials
from sbc.auth.secrets import Secret, SecretError, SecretRef, resolve_secret
from sbc.policy.admission import (
    AdmissionFile,
    Limit,
    admission_references,
    compile_admission,
    trunk_scope,
    with_scopes,
)
from sbc.policy.compiled import Interface, Policy, Trunk
from sbc.policy.crossref import (
    INTERFACES_FILE,
    ROUTES_FILE,
    TRUNKS_FILE,
    Entries,
    Finding,
    check_policy,
    check_references,
)
from sbc.policy.issues import PolicyError, PolicyIssue
from sbc.policy.manipulation_schema import MANIPULATIONS_FILE, ManipulationsFile
from sbc.policy.manipulations import compile_manipulations, manipulation_references
from sbc.policy.regex import compile_regex
from sbc.policy.routing import (
    Group,
    NumberRange,
    Route,
    header_patterns,
    time_window,
    translation,
)
from sbc.policy.schema import (
    InterfacesFile,
    InterfaceSpec,
    RoutesFile,
    RouteSpec,
    Settings,
    TrunkGroup,
    TrunksFile,
    TrunkSpec,
)
from sbc.policy.security import SecurityFile, compile_security, security_references
from sbc.policy.source import Loc, PolicySource, read_source
from sbc.sip.headers import canonical_name

SETTINGS_FILE = "sbc.yaml"
SECURITY_FILE = "security.yaml"
ADMISSION_FILE = "admission.yaml"
POLICY_FILES = (
    INTERFACES_FILE,
    TRUNKS_FILE,
    ROUTES_FILE,
    MANIPULATIONS_FILE,
    SECURITY_FILE,
    ADMISSION_FILE,
    SETTINGS_FILE,
)
OPTIONAL_FILES = frozenset({MANIPULATIONS_FILE, SECURITY_FILE, ADMISSION_FILE, SETTINGS_FILE})

M = TypeVar("M", bound=BaseModel)


def load_policy(directory: str | os.PathLike[str]) -> Policy:
    """Load, validate and compile the policy in ``directory``.

    Raises :class:`PolicyError` listing every problem found; never any other
    exception for bad input.
    """
    path = Path(directory)
    if not path.is_dir():
        reason = "not a directory" if path.exists() else "policy directory not found"
        raise PolicyError([PolicyIssue(str(directory), 0, reason)])
    sources, issues = _read_all(path)
    interfaces = _validate(sources.get(INTERFACES_FILE), InterfacesFile, issues)
    trunks = _validate(sources.get(TRUNKS_FILE), TrunksFile, issues)
    routes = _validate(sources.get(ROUTES_FILE), RoutesFile, issues)
    manipulations = _validate(sources.get(MANIPULATIONS_FILE), ManipulationsFile, issues)
    security = _validate(sources.get(SECURITY_FILE), SecurityFile, issues)
    admission = _validate(sources.get(ADMISSION_FILE), AdmissionFile, issues)
    settings = _validate(sources.get(SETTINGS_FILE), Settings, issues)
    interface_entries = _entries(
        interfaces, InterfaceSpec, sources.get(INTERFACES_FILE), "interfaces"
    )
    trunk_entries = _entries(trunks, TrunkSpec, sources.get(TRUNKS_FILE), "trunks")
    findings = check_policy(
        interface_entries,
        trunk_entries,
        _entries(routes, RouteSpec, sources.get(ROUTES_FILE), "routes"),
    )
    known = (interface_entries.names, trunk_entries.names)
    if manipulations is not None:
        refs = manipulation_references(manipulations)
        findings += check_references(MANIPULATIONS_FILE, refs, *known)
    if security is not None:
        findings += check_references(SECURITY_FILE, security_references(security), *known)
    if admission is not None:
        findings += check_references(ADMISSION_FILE, admission_references(admission), *known)
    issues.extend(_locate(finding, sources) for finding in findings)
    if (
        issues
        or interfaces is None
        or trunks is None
        or routes is None
        or manipulations is None
        or security is None
        or admission is None
        or settings is None
    ):
        raise PolicyError(_in_file_order(issues))
    secrets = _secrets(trunks.trunks, path, sources[TRUNKS_FILE])
    if isinstance(secrets, PolicyError):
        raise secrets
    credentials, users = secrets
    policy = _compile(interfaces.interfaces, trunks.trunks, routes.routes, settings)
    policy = replace(
        policy,
        trunks={
            name: replace(trunk, credentials=credentials.get(name), auth_users=users.get(name, {}))
            for name, trunk in policy.trunks.items()
        },
    )
    trunk_limits = {
        trunk_scope(trunk.name): Limit(trunk.max_calls, trunk.max_cps)
        for trunk in policy.trunks.values()
    }
    return replace(
        policy,
        manipulations=compile_manipulations(manipulations),
        security=compile_security(security),
        admission=with_scopes(compile_admission(admission), trunk_limits),
    )


# --- reading ---------------------------------------------------------------


def _read_all(path: Path) -> tuple[dict[str, PolicySource], list[PolicyIssue]]:
    """Parse every known file; a file that fails to parse is left out of ``sources``."""
    sources: dict[str, PolicySource] = {}
    issues: list[PolicyIssue] = []
    for name in POLICY_FILES:
        file = path / name
        if name in OPTIONAL_FILES and not file.exists():
            sources[name] = PolicySource(name, None, None)
            continue
        result = read_source(file)
        if isinstance(result, PolicyIssue):
            issues.append(result)
        else:
            sources[name] = result
            issues.extend(result.duplicate_keys())
    return sources, issues


# --- schema validation -----------------------------------------------------


def _validate(source: PolicySource | None, model: type[M], issues: list[PolicyIssue]) -> M | None:
    """Validate one whole file; an empty file counts as an empty mapping."""
    if source is None:
        return None
    try:
        return model.model_validate({} if source.data is None else source.data)
    except ValidationError as exc:
        issues.extend(_schema_issue(source, error) for error in exc.errors())
        return None


def _schema_issue(source: PolicySource, error: ErrorDetails) -> PolicyIssue:
    loc: Loc = tuple(error["loc"])
    return PolicyIssue(source.name, source.line_of(loc), _with_path(loc, _message(error)))


def _message(error: ErrorDetails) -> str:
    """Pydantic's message, minus its "Value error, " prefix and class names."""
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if error["type"] in {"model_type", "dict_type"}:
        return "Input should be a mapping"
    return error["msg"]


def _with_path(loc: Loc, message: str) -> str:
    return f"{format_loc(loc)}: {message}" if loc else message


def format_loc(loc: Loc) -> str:
    """Render ``("trunks", 1, "port")`` as ``trunks[1].port``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


# --- cross-references -------------------------------------------------------


def _entries(
    validated: BaseModel | None, spec: type[M], source: PolicySource | None, key: str
) -> Entries[M]:
    """The entries to cross-check: all of them if the file validated, else the good ones."""
    raw = _raw_list(source, key)
    if raw is None:
        return Entries([], None)
    names = frozenset(item["name"] for item in raw if isinstance(item.get("name"), str))
    if validated is not None:
        return Entries(list(enumerate(getattr(validated, key))), names)
    valid: list[tuple[int, M]] = []
    for index, item in enumerate(raw):
        try:
            valid.append((index, spec.model_validate(item)))
        except ValidationError:
            continue
    return Entries(valid, names)


def _raw_list(source: PolicySource | None, key: str) -> list[dict[str, Any]] | None:
    """The file's list under ``key`` as raw mappings, or None if there is no such list."""
    data = source.data if source is not None else None
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [item if isinstance(item, dict) else {} for item in items]


def _locate(finding: Finding, sources: dict[str, PolicySource]) -> PolicyIssue:
    source = sources[finding.file]
    message = _with_path(finding.loc, finding.message)
    return PolicyIssue(finding.file, source.line_of(finding.loc), message)


def _in_file_order(issues: Iterable[PolicyIssue]) -> list[PolicyIssue]:
    """Sort by file (in the order operators read them), then line; stable within a line."""

    def key(issue: PolicyIssue) -> tuple[int, int]:
        rank = POLICY_FILES.index(issue.file) if issue.file in POLICY_FILES else -1
        return rank, issue.line

    return sorted(issues, key=key)


# --- compiling --------------------------------------------------------------


def _compile(
    interfaces: Iterable[InterfaceSpec],
    trunks: Iterable[TrunkSpec],
    routes: Iterable[RouteSpec],
    settings: Settings,
) -> Policy:
    return Policy(
        interfaces={spec.name: _interface(spec) for spec in interfaces},
        trunks={spec.name: _trunk(spec) for spec in trunks},
        routes=tuple(_route(spec) for spec in routes),
        settings=settings,
    )


def _interface(spec: InterfaceSpec) -> Interface:
    return Interface(
        name=spec.name,
        address=spec.address,
        port=spec.port,
        transports=frozenset(spec.transports),
        advertised_address=spec.advertised_address or spec.address,
        media_address=spec.media_address or spec.address,
        media_ports=spec.media_ports,
        tls=spec.tls,
        registration=spec.registration,
    )


def _secrets(
    trunks: Iterable[TrunkSpec], directory: Path, source: PolicySource
) -> tuple[dict[str, DigestCredentials], dict[str, dict[str, Secret]]] | PolicyError:
    """Resolve every secret the trunks name now: a missing one is a policy error
    at its line, not a failed call later. Values are never printed."""
    credentials: dict[str, DigestCredentials] = {}
    users: dict[str, dict[str, Secret]] = {}
    issues = []

    def resolve(ref: SecretRef, loc: Loc) -> Secret | None:
        try:
            return resolve_secret(ref, base=directory)
        except SecretError as exc:
            issues.append(PolicyIssue(TRUNKS_FILE, source.line_of(loc), _with_path(loc, str(exc))))
            return None

    for index, spec in enumerate(trunks):
        if spec.auth is not None:
            password = resolve(spec.auth.password, ("trunks", index, "auth", "password"))
            if password is not None:
                auth = spec.auth
                credentials[spec.name] = DigestCredentials(auth.username, password, auth.realm)
        if spec.require_auth is not None:
            for user, ref in spec.require_auth.users.items():
                secret = resolve(ref, ("trunks", index, "require_auth", "users", user))
                if secret is not None:
                    users.setdefault(spec.name, {})[user] = secret
    return PolicyError(issues) if issues else (credentials, users)


def _trunk(spec: TrunkSpec) -> Trunk:
    return Trunk(
        spec.name,
        spec.interface,
        spec.address,
        spec.port,
        spec.transport,
        sources=tuple(ipaddress.ip_network(cidr) for cidr in spec.sources),
        max_calls=spec.max_calls,
        max_cps=float(spec.max_cps),
        options_interval=float(spec.options_interval_s),
        pass_headers=frozenset(canonical_name(name) for name in spec.pass_headers),
        tls=spec.tls,
        register=spec.register_,
        require_auth=spec.require_auth,
        srtp=spec.srtp,
        codecs=spec.codecs,
        srtp_keying=spec.srtp_keying,
        dtmf=spec.dtmf,
        dtmf_info=spec.dtmf_info,
        peer_may_move=spec.peer_may_move,
        trust_route=spec.trust_route,
    )


def _route(spec: RouteSpec) -> Route:
    window = spec.time
    return Route(
        spec.name,
        from_trunk=spec.from_trunk,
        from_interface=spec.from_interface,
        prefix=spec.prefix,
        ruri_regex=compile_regex(spec.ruri_regex) if spec.ruri_regex is not None else None,
        ruri_range=NumberRange(spec.ruri_range.first, spec.ruri_range.last)
        if spec.ruri_range is not None
        else None,
        from_prefix=spec.from_prefix,
        from_regex=compile_regex(spec.from_regex) if spec.from_regex is not None else None,
        headers=header_patterns({canonical_name(k): v for k, v in spec.headers.items()}),
        time=time_window(window.days, window.start, window.end, window.timezone)
        if window is not None
        else None,
        to=tuple(_target(entry) for entry in spec.to),
        reject=(spec.reject.status, spec.reject.reason) if spec.reject is not None else None,
        to_registered=spec.to_registered,
        translate=translation(spec.translate.regex, spec.translate.replacement)
        if spec.translate is not None
        else None,
        failover_on=frozenset(spec.failover_on),
    )


def _target(entry: str | TrunkGroup) -> str | Group:
    if isinstance(entry, str):
        return entry
    return Group(tuple((member.trunk, member.weight) for member in entry.group))
