"""Requests the SBC sends on its own behalf, outside any call, and their answers.

Theory of operation. Besides calls, the core originates three kinds of
request, each sent through :meth:`sbc.b2bua.core.Core.send_new` with a
context object on its client transaction that says what it was for:

- OPTIONS probes of trunks with liveness checks (:class:`Probe`,
  :mod:`sbc.b2bua.liveness`): the final status marks the trunk up or down;
- the SBC's own registrations with trunks marked ``register``
  (:class:`RegistrationContext`, :mod:`sbc.b2bua.registration`): a
  challenge or a 423 sends the REGISTER again, a failure schedules a retry;
- the registration relay's upstream REGISTERs and keepalives
  (:class:`RelayedRegister`, :class:`Keepalive`, :mod:`sbc.b2bua.registrar`).

:func:`on_answer` routes an answer (or a timeout/transport failure status)
by that context; provisional answers change nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbc.b2bua.liveness import Probe, options_probe, probe_target
from sbc.b2bua.registrar import Keepalive, RelayedRegister
from sbc.b2bua.registration import RegistrationContext
from sbc.sip.message import Response

if TYPE_CHECKING:
    from sbc.b2bua.core import Core


def send_probes(core: Core, now: float) -> None:
    """An OPTIONS to each trunk whose liveness probe is due."""
    for name in core.liveness.due(now):
        trunk = core.policy.trunks.get(name)
        if trunk is None:
            continue
        interface = core.policy.interfaces[trunk.interface]
        probe = options_probe(trunk, interface, core.config.user_agent)
        core.send_new(probe, probe_target(trunk), Probe(name))


def send_due_registrations(core: Core, now: float) -> None:
    """A REGISTER for each of our registrations due for renewal (or retry)."""
    for registration, register in core.registrations.due(now):
        core.send_new(register, registration.target(), registration.context(register))


def on_answer(core: Core, context: object, response: Response | None, status: int | None) -> bool:
    """Route the answer to a request of ours; False when ``context`` is not one."""
    if isinstance(context, RegistrationContext):
        _on_registration(core, context, response, status)
        return True
    if not isinstance(context, Probe | RelayedRegister | Keepalive):
        return False
    final = status if response is None else response.status
    if final is None or final < 200:
        return True
    if isinstance(context, Probe):
        core.liveness.answered(context.trunk, final, core.now)
    elif isinstance(context, RelayedRegister):
        core.registrar.on_upstream(core, context, response, final, core.now)
    return True


def _on_registration(
    core: Core, context: RegistrationContext, response: Response | None, status: int | None
) -> None:
    registration = core.registrations.get(context.trunk)
    if registration is None:
        return
    if response is not None:
        again = registration.on_response(response, core.now)
        if again is not None:  # answered challenge, or 423 with a longer expiry
            core.send_new(again, registration.target(), registration.context(again))
    elif status is not None:
        registration.on_failure(status, core.now, context.cseq)
