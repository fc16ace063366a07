"""Wiring: the asyncio runtime around the sans-IO core.

This module owns the clock (``loop.time()``) and the sockets: transport
messages go into :class:`~sbc.b2bua.core.Core`, its :class:`Transmit` actions
go out, and one ``loop.call_at`` is kept armed at the core's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import tempfile
from pathlib import Path

import structlog

from sbc.admin.facade import RuntimeFacade
from sbc.admin.metrics import build_registry, render_metrics
from sbc.admin.server import (
    AdminConfigError,
    AdminServer,
    AdminSettings,
    check_bind,
    launch_admin,
    load_token,
)
from sbc.b2bua.call import Call
from sbc.b2bua.cdr import record_of
from sbc.b2bua.core import Core
from sbc.cdr import CdrStoreError, SqliteCdrStore
from sbc.cdr.writer import CdrWriter
from sbc.gctune import FULL_COLLECTION_INTERVAL_S, full_collection, tune_gc
from sbc.kernel.filter import KernelFilterError
from sbc.kernel.ruleset import Listener
from sbc.kernel.runtime import SYNC_INTERVAL_S, KernelFilterRuntime
from sbc.load import LoadMonitor
from sbc.log import configure_logging
from sbc.media.anchor import MediaAnchor
from sbc.media.interface import MediaHandler, PassthroughMedia
from sbc.media.portcheck import pair_free
from sbc.media.ports import PortPool
from sbc.media.relay.engine import RelayEngine
from sbc.media.relay.workers import WorkerPool
from sbc.media.stats import REJECTED
from sbc.media.transcode.pool import TranscodePool
from sbc.policy import Interface, Policy, TransportSettings
from sbc.sip.target import Target
from sbc.sip.transaction import Transmit
from sbc.transport import (
    Inbound,
    Peer,
    Screening,
    TlsClientConfig,
    TlsConfigError,
    TlsServerConfig,
    TransportLimits,
    TransportManager,
    install_best_event_loop,
)
from sbc.watch import PolicyWatcher

log = structlog.get_logger("sbc")

#: ``sbc run`` exit status when a listener, the admin API or the CDR store cannot start.
EXIT_START_FAILED = 3

#: After the grace period, how long the final BYEs may take before we exit.
_FINAL_BYE_WAIT = 2.0


class Runtime:
    """One signalling process: listeners, the core, its timer."""

    def __init__(self, policy: Policy, directory: Path) -> None:
        self.policy = policy
        self.directory = directory
        self.core = Core(policy)
        self.transport = TransportManager(
            self._on_message,
            on_transport_error=self._on_transport_error,
            on_connected=self._on_connected,
            tcp_idle_timeout=float(policy.settings.sip.tcp_idle_timeout_s),
            limits=transport_limits(policy.settings.transport),
            screen=self._screen_source,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # uvloop's handles have no when()
        self._stop = asyncio.Event()
        self._load: LoadMonitor | None = None
        self._gc_handle: asyncio.TimerHandle | None = None
        self._relay: RelayEngine | WorkerPool | None = None
        self.watcher = PolicyWatcher(directory, lambda: self.policy, self.apply_policy)
        self.listening = False
        self.admin: AdminServer | None = None
        self.cdr: CdrWriter | None = None
        #: nftables in front of the listeners (kernel_filter in security.yaml)
        self.kernel = KernelFilterRuntime()
        self._kernel_handle: asyncio.TimerHandle | None = None
        # Media counters of calls that have ended (live calls are read on demand).
        self.media_totals: dict[str, float] = {"packets": 0.0, "octets": 0.0, "lost": 0.0}
        self.facade = RuntimeFacade(self)
        self.core.on_call_event = self._on_call_event

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.cdr = self._open_cdr()
        self.core.media = await self._start_media()
        self._load = LoadMonitor(
            self._loop,
            max_delay=self.policy.settings.calls.overload_delay_ms / 1000,
            on_change=self._on_overload,
        )
        self._load.start()
        self.transport.set_tls_clients(tls_clients(self.policy))
        for interface in self.policy.interfaces.values():
            await self.transport.listen(
                interface.name,
                interface.address,
                interface.port,
                interface.transports,
                tls=tls_server(interface),
                tls_port=interface.tls.port if interface.tls is not None else None,
            )
            log.info(
                "interface.listening",
                interface=interface.name,
                address=interface.address,
                port=interface.port,
                transports=sorted(interface.transports),
            )
        self.listening = True
        self.kernel.start(self.policy, self._listeners(), self.core.guard, self._loop.time())
        self._kernel_handle = self._loop.call_later(SYNC_INTERVAL_S, self._follow_bans)
        self.admin = await self._start_admin()

    async def serve(self) -> int:
        try:
            await self.start()
        except (AdminConfigError, CdrStoreError, TlsConfigError, KernelFilterError, OSError) as exc:
            log.error("sbc.start_failed", error=str(exc))
            await self.shutdown(0.0)  # whatever did start (workers, sockets) goes
            return EXIT_START_FAILED
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._stop.set)
        tune_gc()
        self.watcher.start()
        self._gc_handle = self.loop.call_later(FULL_COLLECTION_INTERVAL_S, self._full_gc)
        log.info("sbc.ready", policy=str(self.directory), summary=self.policy.describe())
        await self._stop.wait()
        await self.shutdown(float(self.policy.settings.calls.shutdown_grace_s))
        return 0

    async def shutdown(self, grace: float) -> None:
        """Stop taking calls, let calls end for ``grace`` seconds, then BYE the rest."""
        self.core.begin_drain()
        log.info("sbc.draining", calls=len(self.core.calls), grace_s=grace)
        deadline = self.loop.time() + grace
        while self.core.calls and self.loop.time() < deadline:
            await asyncio.sleep(0.1)
        if self.core.calls:
            self._send(self.core.hangup_all(self.loop.time()))
            deadline = self.loop.time() + _FINAL_BYE_WAIT
            while self.core.calls and self.loop.time() < deadline:
                await asyncio.sleep(0.05)
        await self.watcher.stop()
        if self.admin is not None:
            await self.admin.stop()
        if self._timer is not None:
            self._timer.cancel()
        if self._load is not None:
            self._load.stop()
        if self._gc_handle is not None:
            self._gc_handle.cancel()
        if isinstance(self._relay, WorkerPool):
            await self._relay.close()
        elif self._relay is not None:
            self._relay.close()
        await self.transport.close()
        if self._kernel_handle is not None:
            self._kernel_handle.cancel()
        self.kernel.close()  # it kept dropping floods while calls drained
        if self.cdr is not None:
            await self.cdr.aclose()  # every record of every call written
        log.info("sbc.stopped", calls_left=len(self.core.calls))

    def stop(self) -> None:
        self._stop.set()

    def hangup(self, call_id: str, reason: str = "hung up by operator") -> None:
        self._send(self.core.hangup(call_id, self.loop.time(), reason=reason))

    def media_alive(self) -> bool:
        """Media can be relayed: in-process, not anchored, or a worker is alive."""
        return not isinstance(self._relay, WorkerPool) or bool(self._relay.pids())

    def loop_lag(self) -> float:
        return self._load.lag if self._load is not None else 0.0

    def apply_policy(self, policy: Policy) -> None:
        """Swap in a validated policy: new calls follow it, established calls go on."""
        self.policy = policy
        self.transport.set_limits(
            transport_limits(policy.settings.transport),
            float(policy.settings.sip.tcp_idle_timeout_s),
        )
        try:
            self.transport.set_tls_clients(tls_clients(policy))
        except TlsConfigError as exc:  # files went missing since validation: keep the old
            log.error("tls.config_error", error=str(exc))
        self.core.set_policy(policy, self.loop.time())
        if self.listening:
            self.kernel.reload(policy, self.core.guard, self.loop.time())
        if isinstance(self.core.media, MediaAnchor):  # calls above a lower capacity go on
            self.core.media.transcoding.resize(policy.settings.transcoding.max_sessions)
            self.core.media.opus_complexity = policy.settings.transcoding.opus_complexity
            self.core.media.max_streams = policy.settings.media.max_streams
        if self._load is not None:
            self._load.max_delay = policy.settings.calls.overload_delay_ms / 1000
        self._rearm()  # liveness probes may be due sooner

    async def _start_media(self) -> MediaHandler:
        """Anchor media (RTP relay in worker processes, or in-process with
        ``workers: 0``) unless the policy says SDP crosses as is."""
        settings = self.policy.settings.media
        if not settings.anchor:
            return PassthroughMedia()
        timeout = float(settings.inactivity_timeout_s)
        if settings.workers == 0:
            relay: RelayEngine | WorkerPool = RelayEngine(
                self._on_media_inactive, timeout, on_dtmf=self._on_media_dtmf
            )
        else:
            pool = WorkerPool(
                settings.workers,
                on_lost=self._on_media_lost,
                on_inactive=self._on_media_inactive,
                on_dtmf=self._on_media_dtmf,
                inactivity_timeout=timeout,
            )
            await pool.start()
            relay = pool
        self._relay = relay
        log.info("media.anchoring", workers=settings.workers, inactivity_timeout_s=timeout)
        transcoding = self.policy.settings.transcoding
        return MediaAnchor(
            relay,
            PortPool(available=pair_free),
            transcoding=TranscodePool(transcoding.max_sessions),
            opus_complexity=transcoding.opus_complexity,
            max_streams=settings.max_streams,
        )

    async def _start_admin(self) -> AdminServer | None:
        """The REST plane in this process and loop (refuses a non-loopback bind
        without a token: :class:`AdminConfigError` stops the start)."""
        settings = self.policy.settings.admin
        if not settings.enabled:
            return None
        token_file = Path(settings.token_file) if settings.token_file else None
        token = load_token(file=token_file)
        if token is None:
            check_bind(settings.address, None)  # beyond loopback a token must be configured
            state_dir = Path(self.policy.settings.cdr.path).parent
            token = generated_token(state_dir / GENERATED_TOKEN_FILE)
        registry = build_registry(self.facade)
        server = await launch_admin(
            self.facade,
            AdminSettings(settings.address, settings.port, token),
            metrics=lambda: render_metrics(registry),
        )
        log.info("admin.listening", address=server.host, port=server.port, auth=token is not None)
        return server

    def _open_cdr(self) -> CdrWriter | None:
        """The CDR store (records left open by a crash are completed now)."""
        settings = self.policy.settings.cdr
        if not settings.enabled:
            return None
        return CdrWriter(SqliteCdrStore(settings.path))

    def _on_call_event(self, event: str, call: Call) -> None:
        if event == "ended" and call.media_stats is not None:
            stats = call.media_stats
            self.media_totals["packets"] += stats.packets
            self.media_totals["octets"] += stats.octets
            self.media_totals["lost"] += stats.lost
            for reason in REJECTED:
                self.media_totals[reason] = self.media_totals.get(reason, 0.0) + stats.extra.get(
                    reason, 0.0
                )
        if self.cdr is None or self._loop is None:
            return
        record = record_of(call, self.facade.wall)
        if event == "ended":
            self.cdr.submit_close(record)
        elif event == "started":
            self.cdr.submit_open(record)  # a crash mid-call still leaves its trace

    def _on_media_dtmf(self, session: str, leg: str, digit: str, duration_ms: int) -> None:
        """A digit taken out of a leg's RTP (RFC 4733): INFO on the other leg."""
        self._send(self.core.dtmf(session, leg, digit, duration_ms, self.loop.time()))

    def _on_media_inactive(self, session: str) -> None:
        self._on_media_lost(session, "media inactivity")

    def _on_media_lost(self, session: str, reason: str) -> None:
        """No media any more for a call (timeout, dead worker): end both legs."""
        log.info("media.lost", call=session, reason=reason)
        self._send(self.core.hangup(session, self.loop.time(), reason=reason))

    # --- edges ---------------------------------------------------------------------

    def _on_message(self, inbound: Inbound) -> None:
        if inbound.queued and self._load is not None:
            self._load.observe_queued(inbound.queued)
        peer = inbound.source
        source = Target(inbound.interface, peer.transport, peer.host, peer.port, inbound.connection)
        self._send(self.core.receive(inbound.data, source, self.loop.time()))

    def _screen_source(self, host: str, interface: str) -> Screening:
        """Asked by the transport once per inbound TCP/TLS connection, before a
        byte is read or a TLS handshake starts: the guard's ban table and ACL
        (cheap), then whether a trunk connects (its own cap, the reserve)."""
        if not self.core.guard.check_source(host, interface, self.loop.time()).allowed:
            return Screening.REFUSE
        if self.policy.trunk_for_source(interface, host) is not None:
            return Screening.TRUNK
        return Screening.STRANGER

    def _on_transport_error(self, peer: Peer, reason: str) -> None:
        log.warning(
            "transport.error", peer=f"{peer.transport}:{peer.host}:{peer.port}", reason=reason
        )
        for interface in self.policy.interfaces:
            target = Target(interface, peer.transport, peer.host, peer.port)
            self._send(self.core.transport_error(target, self.loop.time()))

    def _on_connected(self, peer: Peer) -> None:
        """A TCP/TLS connection to a trunk is up: bindings that rode an earlier
        one register again over it at once (the REGISTER that opened it does not)."""
        again = self.core.registrations.reconnected(
            peer.transport, peer.host, peer.port, self.loop.time()
        )
        if again:
            log.info("registration.reconnected", trunks=again)
            self._rearm()

    def _listeners(self) -> list[Listener]:
        """The sockets the SIP interfaces are bound to (ports chosen by the OS included)."""
        found = []
        for interface in self.policy.interfaces.values():
            for transport in sorted(interface.transports):
                with contextlib.suppress(KeyError):
                    host, port = self.transport.bound(interface.name, transport)
                    found.append(Listener(host, transport, port))
        return found

    def _follow_bans(self) -> None:
        """The kernel's ban sets follow the guard's table (a no-op unless it changed)."""
        self.kernel.follow(self.core.guard, self.loop.time())
        self._kernel_handle = self.loop.call_later(SYNC_INTERVAL_S, self._follow_bans)

    def _full_gc(self) -> None:
        found, seconds = full_collection()
        log.info(
            "gc.full", unreachable=found, ms=round(seconds * 1000, 1), calls=len(self.core.calls)
        )
        self._gc_handle = self.loop.call_later(FULL_COLLECTION_INTERVAL_S, self._full_gc)

    def _on_overload(self, overloaded: bool) -> None:
        self.core.overloaded = overloaded

    def _on_timer(self) -> None:
        self._timer = None
        self._send(self.core.handle_timer(self.loop.time()))

    def _send(self, actions: list[Transmit]) -> None:
        send = self.transport.send
        for action in actions:
            target = action.target
            peer = Peer(target.transport, target.host, target.port)
            send(target.interface, action.data, peer, target.connection)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.core.get_timer()
        timer = self._timer
        if timer is not None:
            if deadline is not None and self._timer_at <= deadline:
                return  # armed early enough; handle_timer re-arms
            timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)


#: Written beside the CDR database when no token is configured: the API is never open.
GENERATED_TOKEN_FILE = "sbc-admin.token"


def generated_token(path: Path) -> str:
    """A fresh random token in ``path`` (owner-only), for an SBC given none.

    Security by default: the admin plane always wants a bearer token; an
    operator who configured none reads this file (its path is logged, the
    token never is).
    """
    token = secrets.token_urlsafe(32)
    # A new owner-only file renamed over the old one: an older file, perhaps
    # readable by others, is never written into, and no reader sees half a token.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    log.warning("admin.token_generated", file=str(path.resolve()))
    return token


def transport_limits(settings: TransportSettings) -> TransportLimits:
    """The transport's edge limits from ``sbc.yaml`` (``transport:``)."""
    return TransportLimits(
        max_udp_message=settings.max_udp_message,
        max_stream_message=settings.max_stream_message,
        max_connections=settings.max_connections,
        reserved_outbound_connections=settings.reserved_outbound_connections,
        max_connections_per_source=settings.max_connections_per_source,
        max_connections_per_trunk_source=settings.max_connections_per_trunk_source,
        max_tls_handshakes_per_source=settings.max_tls_handshakes_per_source,
        message_timeout=float(settings.message_timeout_s),
        tls_handshake_timeout=float(settings.tls_handshake_timeout_s),
    )


def tls_server(interface: Interface) -> TlsServerConfig | None:
    """The TLS listener settings of ``interface`` (None without TLS)."""
    tls = interface.tls
    if tls is None:
        return None
    return TlsServerConfig(
        certfile=tls.certfile,
        keyfile=tls.keyfile,
        cafile=tls.cafile,
        require_client_cert=tls.require_client_cert,
        pinned_client_fingerprints=tuple(tls.pinned_client_fingerprints),
    )


def tls_clients(policy: Policy) -> dict[tuple[str, int], TlsClientConfig]:
    """How to connect to each TLS trunk (unlisted TLS peers: system CAs, name = address)."""
    configs = {}
    for trunk in policy.trunks.values():
        if trunk.transport != "tls":
            continue
        tls = trunk.tls
        configs[(trunk.address, trunk.port)] = TlsClientConfig(
            cafile=tls.cafile if tls else None,
            server_hostname=(tls.server_name if tls and tls.server_name else None),
            certfile=tls.certfile if tls else None,
            keyfile=tls.keyfile if tls else None,
            pinned_fingerprints=tuple(tls.pinned_fingerprints) if tls else (),
        )
    return configs


def run(policy: Policy, directory: Path) -> int:
    """Entry point of ``sbc run``."""
    settings = policy.settings.logging
    configure_logging(settings.level, settings.json_)
    loop_kind = install_best_event_loop()
    log.info("sbc.starting", loop=loop_kind)
    return asyncio.run(_serve(policy, directory))


async def _serve(policy: Policy, directory: Path) -> int:
    return await Runtime(policy, directory).serve()
