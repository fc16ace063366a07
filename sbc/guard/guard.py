"""The first thing every request meets: bans, ACLs, rate limits and scanners.

A message meets, in order, and stops at the first refusal:

1. the ban table (a banned source gets ``banned``: silence by default);
2. the interface's ACL (deny wins over allow; empty allow = allow all);
3. for a source that is no trunk's, the token bucket of the method's class,
   read from the first token of the datagram (:func:`request_class`;
   anything that is not a request line is charged to "other");

Steps 1-3 run *before* the message is parsed (:meth:`Guard.check_source`,
:meth:`Guard.limit_source`): a flood or a banned source costs a few dict
lookups, not a parse. Then, on the parsed new request (:meth:`Guard.screen`):

4. scanner User-Agents: the source is banned at once, unless it is exempt,
   a trunk's, or has standing (an established call or a relay binding:
   :attr:`Guard.spares`), since one forged datagram must not ban it;
5. for a trunk, its source's bucket if ``per_source_applies_to: all``, then
   the per-trunk bucket. Trunk traffic is limited, never banned.

A request refused at step 3 is a *strike*, and so is a message from a
non-trunk source that does not parse (:meth:`Guard.record_malformed`);
``strikes`` of them within ``window_s`` ban the source for ``duration_s``
(never an exempt source). :meth:`Guard.check` runs all five steps at once.
Sources are keyed by address prefix (:mod:`sbc.guard.keys`: an IPv6 /64 by
default). Bans expire lazily when looked up. A failed digest authentication
(:meth:`Guard.record_auth_failure`) counts toward banning a stranger; from a
trunk's address, which anyone can forge, it raises an alert instead
(:mod:`sbc.guard.alerts`).

Memory stays bounded under a spoofed-source flood: per-source state lives in
an LRU of ``max_sources`` entries and the ban table holds at most
``max_bans`` (a flood churns its newest automatic ban, never the manual or
standing ones: :mod:`sbc.guard.bans`); the ACL and User-Agent verdict caches
are cleared when full. The module is pure: time is always passed in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import structlog

from sbc.guard.alerts import AuthWatch, Throttle, Window, shown
from sbc.guard.bans import Ban, BanReason, BanTable
from sbc.guard.keys import SourceKeys
from sbc.guard.standing import Standing
from sbc.guard.tokens import TokenBucket
from sbc.policy.security import (
    CLASS_OF_METHOD,
    METHOD_CLASSES,
    OTHER_CLASS,
    AccessList,
    MethodLimits,
    RateLimit,
    Refusal,
    SecurityPolicy,
    source_key,
)

log = structlog.get_logger("sbc.guard")

_CACHE_LIMIT = 4096  # User-Agent verdicts kept; distinct UAs are few unless forged


@dataclass(frozen=True)
class Verdict:
    """What to do with a request: let it in, ignore it, or answer it."""

    action: Literal["allow", "drop", "respond"]
    status: int = 0
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


ALLOW = Verdict("allow")
DROP = Verdict("drop")


def verdict_for(refusal: Refusal) -> Verdict:
    """The wire form of a configured refusal (Retry-After per RFC 3261 §20.33)."""
    if refusal.status is None:
        return DROP
    headers = {} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)}
    return Verdict("respond", refusal.status, refusal.reason, MappingProxyType(headers))


def _no_standing(_source_ip: str) -> bool:
    return False


#: Method classes by the first token of a request, as bytes; no method is longer.
_CLASS_OF_TOKEN = {method.encode(): cls for method, cls in CLASS_OF_METHOD.items()}
_MAX_METHOD_CHARS = 32


def request_class(data: bytes) -> int | None:
    """The method class of a message's Request-Line, read from its first token
    without parsing; None when it does not start like a request (a response,
    garbage). Leading CRLFs are skipped (RFC 3261 §7.5)."""
    if data[:1] in (b"\r", b"\n"):
        data = data[:64].lstrip(b"\r\n")
    space = data.find(b" ", 0, _MAX_METHOD_CHARS + 1)
    if space <= 0:
        return None
    token = data[:space]
    if not token.isalpha():  # a status line starts "SIP/2.0"; methods are tokens
        return None
    return _CLASS_OF_TOKEN.get(token, OTHER_CLASS)


class _Source:
    """What the guard remembers about one source IP."""

    __slots__ = ("auth", "buckets", "strikes")

    def __init__(self) -> None:
        self.buckets: list[TokenBucket | None] = [None, None, None, None]
        # Created on first use: most sources never strike or fail to authenticate.
        self.strikes: Window | None = None
        self.auth: Window | None = None

    def bucket(self, cls: int, limit: RateLimit) -> TokenBucket:
        """The bucket of method class ``cls``, made on first use."""
        bucket = self.buckets[cls]
        if bucket is None:
            bucket = self.buckets[cls] = TokenBucket(limit.rate, limit.burst)
        return bucket


_CLASSES = range(len(METHOD_CLASSES))
STAT_NAMES = (
    "allowed",
    "limited",
    "banned",
    "dropped_banned",
    "acl_denied",
    "scanners",
    "malformed",
    "scanners_spared",
)


class Guard:
    """Stateful request screening for one SBC; feed it every incoming request."""

    def __init__(self, policy: SecurityPolicy) -> None:
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._bans = BanTable()
        self._banned_keys = self._bans.by_source  # the hot path's one lookup (a plain dict)
        self._trunk_buckets: dict[str, list[TokenBucket | None]] = {}
        self._agents: dict[str, bool] = {}
        #: counters for metrics: see STAT_NAMES and docs/security.md
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._auth = AuthWatch()
        self._keys = SourceKeys(*policy.source_prefix)
        self._standing = Standing(self._keys.of)
        #: whether a source (an address) has standing beyond its calls, e.g. a relay
        #: binding: its scanner User-Agent is then not believed (set by the core)
        self.spares: Callable[[str], bool] = _no_standing
        self._throttle = Throttle()
        self._policy = policy
        self._apply(policy)

    @property
    def policy(self) -> SecurityPolicy:
        return self._policy

    def set_policy(self, policy: SecurityPolicy) -> None:
        """Hot reload: keep bans, strikes, and every bucket whose limit did not change."""
        old = self._policy
        changed = [c for c in _CLASSES if old.per_source[c] != policy.per_source[c]]
        if changed:
            for state in self._sources.values():
                for cls in changed:
                    state.buckets[cls] = None
        for trunk, buckets in list(self._trunk_buckets.items()):
            new = policy.per_trunk.get(trunk)
            if new is None:
                del self._trunk_buckets[trunk]
                continue
            previous = old.per_trunk.get(trunk)
            for cls in _CLASSES:
                if previous is None or previous[cls] != new[cls]:
                    buckets[cls] = None
        if policy.source_prefix != old.source_prefix:
            # Keys change: the buckets and strikes kept under the old ones are moot.
            self._keys = SourceKeys(*policy.source_prefix)
            self._sources.clear()
            self._standing.rekey(self._keys.of)
        self._policy = policy
        self._apply(policy)
        self._trim(self._sources, policy.max_sources)
        self._bans.trim(policy.bans.max_bans)

    def _apply(self, policy: SecurityPolicy) -> None:
        """Copy the policy's hot fields into attributes (one lookup less per request)."""
        self._acl: dict[str, tuple[AccessList, dict[str, bool]]] = {
            name: (acl, {}) for name, acl in policy.acl.items()
        }
        self._per_source: MethodLimits = policy.per_source
        self._plain_v4 = policy.source_prefix[0] == 32  # an IPv4 source is its own key
        self._limit_trunk_sources = policy.limit_trunk_sources
        self._agents.clear()
        self._limited = verdict_for(policy.limited)
        self._banned = verdict_for(policy.banned)
        self._acl_denied = verdict_for(policy.acl_denied)

    # --- the hot path ---------------------------------------------------------

    def check(  # noqa: PLR0917 - hot path: plain arguments, no request object to build
        self,
        method: str,
        source_ip: str,
        interface: str,
        trunk: str | None,
        user_agent: str | None,
        now: float,
    ) -> Verdict:
        """Screen one request, all steps at once (see the module docstring): what
        :meth:`check_source`, :meth:`limit_source` and :meth:`screen` do in turn,
        written out here because it is the hot path of benchmarks and tools."""
        key = source_ip if self._plain_v4 and ":" not in source_ip else self._keys.of(source_ip)
        if self._banned_keys and self._is_banned(key, now):
            self.stats["dropped_banned"] += 1
            return self._banned
        acl = self._acl.get(interface)
        if acl is not None and not self._acl_permits(acl, source_ip):
            self.stats["acl_denied"] += 1
            return self._acl_denied
        cls = CLASS_OF_METHOD.get(method, OTHER_CLASS)
        if trunk is not None:
            if self._limit_trunk_sources:
                return self._screen_trunk(cls, key, trunk, now)
            if not self._trunk_take(trunk, cls, now):
                self.stats["limited"] += 1
                return self._limited
            self.stats["allowed"] += 1
            return ALLOW
        limit = self._per_source[cls]
        if limit is not None:
            state = self._source(key)
            if not state.bucket(cls, limit).take(now):
                self.stats["limited"] += 1
                if self._strike(state, key, source_ip, "rate", now) is None:
                    return self._limited
                return self._banned
        if user_agent and self._is_scanner(user_agent):
            return self._scanner(key, source_ip, user_agent, now)
        self.stats["allowed"] += 1
        return ALLOW

    def check_source(self, source_ip: str, interface: str, now: float) -> Verdict:
        """Steps 1-2 (ban table, ACL), for a datagram not yet parsed.

        A banned scanner's flood then costs two dict lookups instead of a SIP parse.
        """
        key = source_ip if self._plain_v4 and ":" not in source_ip else self._keys.of(source_ip)
        return self._check_source(key, source_ip, interface, now)

    def limit_source(self, cls: int, source_ip: str, now: float) -> Verdict:
        """Step 3 for a source that is no trunk's, before its message is parsed:
        its bucket for method class ``cls`` (:func:`request_class`); a refusal
        is a strike."""
        return self._take(cls, self._keys.of(source_ip), source_ip, now)

    def screen(
        self, method: str, source_ip: str, trunk: str | None, user_agent: str | None, now: float
    ) -> Verdict:
        """Steps 4-5 on a parsed new request that passed :meth:`check_source` (and
        :meth:`limit_source`, when it is no trunk's): the scanner list, then a
        trunk's limits: its source's bucket (``per_source_applies_to: all``) and
        its own. Trunk traffic is limited, never banned."""
        if trunk is not None:
            cls = CLASS_OF_METHOD.get(method, OTHER_CLASS)
            return self._screen_trunk(cls, self._keys.of(source_ip), trunk, now)
        if user_agent and self._is_scanner(user_agent):
            return self._scanner(self._keys.of(source_ip), source_ip, user_agent, now)
        self.stats["allowed"] += 1
        return ALLOW

    def _check_source(self, key: str, source_ip: str, interface: str, now: float) -> Verdict:
        if self._banned_keys and self._is_banned(key, now):
            self.stats["dropped_banned"] += 1
            return self._banned
        acl = self._acl.get(interface)
        if acl is not None and not self._acl_permits(acl, source_ip):
            self.stats["acl_denied"] += 1
            return self._acl_denied
        return ALLOW

    def _take(self, cls: int, key: str, source_ip: str, now: float) -> Verdict:
        """A token from the source's bucket of class ``cls``; a refusal is a strike."""
        limit = self._per_source[cls]
        if limit is None:
            return ALLOW
        state = self._source(key)
        if state.bucket(cls, limit).take(now):
            return ALLOW
        self.stats["limited"] += 1
        if self._strike(state, key, source_ip, "rate", now) is None:
            return self._limited
        return self._banned

    def _scanner(self, key: str, source_ip: str, user_agent: str, now: float) -> Verdict:
        """A scanner's User-Agent from a source that is no trunk's: banned on sight,
        unless exempt or with standing (it stays rate limited like anyone)."""
        if (
            not self._has_standing(key, source_ip, user_agent, now)
            and self._ban(key, source_ip, "scanner", now) is not None
        ):
            self.stats["scanners"] += 1
            return self._banned
        self.stats["allowed"] += 1
        return ALLOW

    def _screen_trunk(self, cls: int, key: str, trunk: str, now: float) -> Verdict:
        """A trunk's request: its source's bucket if ``per_source_applies_to: all``,
        then the trunk's own. Limited, never a strike."""
        if self._limit_trunk_sources:
            limit = self._per_source[cls]
            if limit is not None and not self._source(key).bucket(cls, limit).take(now):
                self.stats["limited"] += 1
                return self._limited
        if not self._trunk_take(trunk, cls, now):
            self.stats["limited"] += 1
            return self._limited
        self.stats["allowed"] += 1
        return ALLOW

    def _has_standing(self, key: str, source_ip: str, user_agent: str, now: float) -> bool:
        """Whether the source is in an established call or has a relay binding:
        one forgeable User-Agent does not ban it. Counted; logged once a window."""
        if key not in self._standing and not self.spares(source_ip):
            return False
        self.stats["scanners_spared"] += 1
        held = self._throttle.due("scanner_spared", now, self._policy.bans.window_s)
        if held is not None:
            log.warning(
                "guard.scanner_spared", source=key, user_agent=shown(user_agent), suppressed=held
            )
        return True

    def call_established(self, call_id: str, hosts: Iterable[str]) -> None:
        """The far ends of an established call have standing until :meth:`call_ended`."""
        self._standing.add(call_id, hosts)

    def call_ended(self, call_id: str) -> None:
        self._standing.remove(call_id)

    def record_malformed(self, source_ip: str, now: float) -> Ban | None:
        """A message from a source that is no trunk's did not parse: a strike."""
        self.stats["malformed"] += 1
        key = self._keys.of(source_ip)
        return self._strike(self._source(key), key, source_ip, "malformed", now)

    def _is_banned(self, key: str, now: float) -> bool:
        ban = self._banned_keys.get(key)
        if ban is None:
            return False
        if now < ban.until:
            return True
        self._bans.lift(key)
        return False

    def _acl_permits(self, acl: tuple[AccessList, dict[str, bool]], source_ip: str) -> bool:
        access, seen = acl
        permitted = seen.get(source_ip)
        if permitted is None:
            permitted = access.permits(source_key(source_ip))
            if len(seen) >= self._policy.max_sources:
                seen.clear()
            seen[source_ip] = permitted
        return permitted

    def _is_scanner(self, user_agent: str) -> bool:
        found = self._agents.get(user_agent)
        if found is None:
            lowered = user_agent.lower()
            found = any(part in lowered for part in self._policy.bans.scanner_agents)
            if len(self._agents) >= _CACHE_LIMIT:
                self._agents.clear()
            self._agents[user_agent] = found
        return found

    def _source(self, key: str) -> _Source:
        """The source's state, marked most recently used; the LRU one goes when full."""
        sources = self._sources
        state = sources.get(key)
        if state is None:
            state = sources[key] = _Source()
            if len(sources) > self._policy.max_sources:
                sources.popitem(last=False)
        else:
            sources.move_to_end(key)
        return state

    def _trunk_take(self, trunk: str, cls: int, now: float) -> bool:
        buckets = self._trunk_buckets.get(trunk)
        if buckets is None:
            limits = self._policy.per_trunk.get(trunk)
            if limits is None:
                return True
            buckets = self._trunk_buckets[trunk] = [None, None, None, None]
        bucket = buckets[cls]
        if bucket is None:
            limit = self._policy.per_trunk[trunk][cls]
            if limit is None:
                return True
            bucket = buckets[cls] = TokenBucket(limit.rate, limit.burst)
        return bucket.take(now)

    def _strike(
        self, state: _Source, key: str, source_ip: str, reason: BanReason, now: float
    ) -> Ban | None:
        """Count a strike; ``strikes`` within ``window_s`` ban (returned)."""
        bans = self._policy.bans
        if bans.strikes is None:
            return None
        strikes = state.strikes = state.strikes or Window()
        if strikes.hit(now, bans.window_s) < bans.strikes:
            return None
        strikes.count = 0
        return self._ban(key, source_ip, reason, now)

    # --- bans ---------------------------------------------------------------------

    def _ban(self, key: str, source_ip: str, reason: BanReason, now: float) -> Ban | None:
        """An automatic ban of ``key`` unless ``source_ip`` is exempt or the table has
        no room (docs in :mod:`sbc.guard.bans`); returns the ban, or None."""
        if self._policy.bans.exempt.contains_key(source_key(source_ip)):
            return None
        return self._put(Ban(key, reason, now, now + self._policy.bans.duration_s), now)

    def ban(self, source_ip: str, now: float, duration_s: float | None = None) -> Ban:
        """Ban ``source_ip`` (its block: ``source_prefix``) from ``now``; the operator's
        call, so exemptions do not apply."""
        duration = self._policy.bans.duration_s if duration_s is None else duration_s
        ban = self._put(Ban(self._keys.of(source_ip), "manual", now, now + duration), now)
        assert ban is not None  # a manual ban always finds room
        return ban

    def _put(self, ban: Ban, now: float) -> Ban | None:
        if not self._bans.add(ban, now, self._policy.bans.max_bans):
            return None
        self._sources.pop(ban.source, None)  # its buckets and strikes are moot now
        self.stats["banned"] += 1
        duration = ban.until - ban.since
        log.warning("guard.banned", source=ban.source, reason=ban.reason, duration_s=duration)
        return ban

    def record_auth_failure(
        self, source_ip: str, now: float, trunk: str | None = None, user: str | None = None
    ) -> Ban | None:
        """Count a failed digest authentication of ``user`` from ``source_ip``.

        From a ``trunk``'s address (which anyone can forge over UDP) it is
        counted per trunk and per username and may raise an alert, never a
        ban. From any other source, ``auth_failures`` within ``window_s`` ban
        it (unless exempt); returns that ban.
        """
        bans = self._policy.bans
        if trunk is not None:
            self._auth.failed(trunk, user or "", now, bans.auth_failures, bans.window_s)
            return None
        key = self._keys.of(source_ip)
        if bans.auth_failures is None or (self._banned_keys and self._is_banned(key, now)):
            return None
        state = self._source(key)
        failures = state.auth = state.auth or Window()
        if failures.hit(now, bans.window_s) < bans.auth_failures:
            return None
        failures.count = 0
        return self._ban(key, source_ip, "auth", now)

    @property
    def auth_failures(self) -> dict[str, int]:
        """Failed authentications from trunk addresses, per trunk, since start."""
        return self._auth.failures

    @property
    def auth_alerts(self) -> dict[str, int]:
        """Alerts raised per trunk (a trunk or one of its users passed ``auth_failures``)."""
        return self._auth.alerts

    def auth_users_tracked(self) -> int:
        return self._auth.users_tracked()

    def bans(self, now: float) -> list[Ban]:
        """Bans in force at ``now``, oldest first (expired ones are forgotten)."""
        return self._bans.in_force(now)

    @property
    def ban_version(self) -> int:
        """Moves whenever the ban table changes (O(1): for followers such as the kernel filter)."""
        return self._bans.version

    def ban_changes(self) -> set[str] | None:
        """Source keys whose ban was made, lifted or ended since the last call, for a
        follower; None when unknown (first call, or too many): compare everything."""
        return self._bans.drain_changes()

    @property
    def ban_table(self) -> Mapping[str, Ban]:
        """Every ban by source key, read-only and uncopied; expired ones may linger
        (compare their ``until`` with the time)."""
        return MappingProxyType(self._bans.by_source)

    def unban(self, source: str) -> bool:
        """Lift the ban of ``source``, an address or a block as :meth:`bans` lists it
        (and forget its strikes); False if it was not banned."""
        key = source if source in self._bans.by_source else self._keys.of(source)
        self._sources.pop(key, None)
        return self._bans.lift(key)

    def tracked_sources(self) -> int:
        """Sources with per-source state (bounded by ``max_sources``)."""
        return len(self._sources)

    @staticmethod
    def _trim(table: OrderedDict[str, _Source], size: int) -> None:
        while len(table) > size:
            table.popitem(last=False)
