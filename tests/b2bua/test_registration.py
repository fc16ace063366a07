"""Outbound registration: the REGISTER client state machine, driven with a fake clock."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from sbc.auth.client import ClientAuth, DigestCredentials
from sbc.auth.server import AuthStatus, DigestServer
from sbc.b2bua.registration import (
    Registration,
    RegistrationContext,
    Registrations,
    RegistrationSpec,
    RegistrationState,
    refresh_delay,
)
from sbc.policy import Interface, Trunk
from sbc.sip.message import Request, Response, build_response, parse_message
from sbc.sip.target import Target
from sbc.sip.uri import parse_uri

REALM = "carrier.example"
KEY = b"r" * 32
USER, PASSWORD = "alice-trunk", "correct horse"
T0 = 1000.0

INTERFACE = Interface(
    name="external",
    address="127.0.0.1",
    port=5060,
    transports=frozenset({"udp", "tcp"}),
    advertised_address="198.51.100.1",
    media_address="127.0.0.1",
    media_ports=(20000, 20099),
)


def trunk(transport: str = "udp", name: str = "carrier", address: str = "127.0.0.10") -> Trunk:
    port = 5061 if transport == "tls" else 5060
    return Trunk(name, "external", address, port, transport, ())


def registration(
    spec: RegistrationSpec | None = None,
    auth: ClientAuth | None = None,
    peer: Trunk | None = None,
) -> Registration:
    return Registration(
        peer or trunk(), INTERFACE, spec or RegistrationSpec("alice"), auth, "sbc-test/1"
    )


def client(password: str = PASSWORD) -> ClientAuth:
    return ClientAuth(DigestCredentials(USER, password, REALM))


def digest_server() -> DigestServer:
    return DigestServer(REALM, KEY, {USER: PASSWORD})


def ok(
    request: Request, contact_expires: int | None = None, expires: int | None = None
) -> Response:
    """A registrar's 200 listing our Contact (with ``contact_expires``) and an Expires header."""
    response = build_response(request, 200, to_tag="reg")
    contact = request.contacts[0].copy()
    contact.params.pop("expires", None)
    if contact_expires is not None:
        contact.params["expires"] = str(contact_expires)
    response.headers.add("Contact", str(contact))
    if expires is not None:
        response.headers.add("Expires", str(expires))
    return response


def answer(request: Request, status: int, **headers: str) -> Response:
    response = build_response(request, status, to_tag="reg")
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def challenge(request: Request, server: DigestServer, now: float, status: int = 401) -> Response:
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    return answer(request, status, **{header.replace("-", "_"): server.challenge(now)})


def first(reg: Registration, now: float = T0) -> Request:
    request = reg.due(now)
    assert request is not None
    return request


def registered(reg: Registration, now: float = T0, granted: int = 3600) -> Request:
    request = first(reg, now)
    assert reg.on_response(ok(request, granted), now) is None
    assert reg.state is RegistrationState.REGISTERED
    return request


def branch(request: Request) -> str | None:
    return request.top_via.params.get("branch")


# --- the REGISTER itself -------------------------------------------------------------


def test_first_register_names_aor_contact_and_expiry() -> None:
    reg = registration()
    request = first(reg)
    assert request.method == "REGISTER"
    assert str(request.uri) == "sip:127.0.0.10:5060"
    assert request.headers.get("To") == "<sip:alice@127.0.0.10>"
    assert request.from_.uri == parse_uri("sip:alice@127.0.0.10")
    assert request.from_.tag
    (contact,) = request.contacts
    assert str(contact) == "<sip:alice@198.51.100.1:5060>;expires=3600"
    assert request.headers.get("Expires") == "3600"
    assert (request.cseq.seq, request.cseq.method) == (1, "REGISTER")
    assert request.call_id == reg.call_id
    via = request.top_via
    assert via.transport == "UDP"
    assert branch(request) is not None
    assert branch(request).startswith("z9hG4bK")  # type: ignore[union-attr]
    assert "rport" in via.params
    assert request.headers.get("Max-Forwards") == "70"
    assert request.headers.get("User-Agent") == "sbc-test/1"
    assert "Authorization" not in request.headers
    reparsed = parse_message(bytes(request))  # what goes on the wire is valid SIP
    assert isinstance(reparsed, Request)
    assert reparsed.cseq.seq == 1


def test_spec_fields_shape_the_request() -> None:
    spec = RegistrationSpec(
        "+15551234", registrar_domain="voip.carrier.example", expires=600, contact_user="sbc1"
    )
    request = first(registration(spec))
    assert str(request.uri) == "sip:voip.carrier.example:5060"
    assert request.headers.get("To") == "<sip:+15551234@voip.carrier.example>"
    assert str(request.contacts[0]) == "<sip:sbc1@198.51.100.1:5060>;expires=600"
    assert request.headers.get("Expires") == "600"


def test_tcp_and_tls_trunks() -> None:
    tcp = first(registration(peer=trunk("tcp")))
    assert str(tcp.uri) == "sip:127.0.0.10:5060;transport=tcp"
    assert str(tcp.contacts[0].uri) == "sip:alice@198.51.100.1:5060;transport=tcp"
    assert tcp.top_via.transport == "TCP"
    tls_reg = registration(RegistrationSpec("alice", contact_port=5061), peer=trunk("tls"))
    tls = first(tls_reg)
    assert str(tls.uri) == "sips:127.0.0.10:5061"
    assert str(tls.contacts[0].uri) == "sips:alice@198.51.100.1:5061"
    assert tls.top_via.transport == "TLS"
    assert tls.top_via.port == 5061  # sent-by is where we listen, like the Contact
    assert tls_reg.target() == Target("external", "tls", "127.0.0.10", 5061)


def test_one_register_in_flight_at_a_time() -> None:
    reg = registration()
    assert reg.next_deadline() == 0.0  # due at once
    request = first(reg)
    assert reg.next_deadline() is None
    assert reg.due(T0 + 1000) is None
    assert reg.context(request) == RegistrationContext("carrier", 1)
    assert reg.status(T0).state is RegistrationState.REGISTERING
    assert reg.status(T0).next_attempt_in is None


# --- refreshing ------------------------------------------------------------------------


def test_refresh_before_expiry_keeps_call_id_and_increments_cseq() -> None:
    reg = registration()
    request = first(reg)
    assert reg.on_response(ok(request, 120), T0) is None
    deadline = reg.next_deadline()
    assert deadline is not None
    assert T0 < deadline < T0 + 120
    assert deadline == T0 + 60  # short grants refresh at half-life
    assert reg.due(deadline - 1) is None
    refresh = reg.due(deadline)
    assert refresh is not None
    assert refresh.call_id == request.call_id
    assert refresh.from_.tag == request.from_.tag
    assert refresh.cseq.seq == 2
    assert branch(refresh) != branch(request)
    assert reg.on_response(ok(refresh, 120), deadline) is None
    third = reg.due(deadline + 60)
    assert third is not None
    assert (third.call_id, third.cseq.seq) == (request.call_id, 3)


def test_long_grant_refreshes_a_margin_before_expiry() -> None:
    reg = registration()
    registered(reg, granted=3600)
    assert reg.next_deadline() == T0 + 3600 - 120


def test_refresh_rule() -> None:
    assert refresh_delay(3600, 120) == 3480
    assert refresh_delay(120, 120) == 60
    assert refresh_delay(60, 0) == 60
    assert refresh_delay(1, 120) == 1.0  # never a storm


def test_registrar_shortens_expiry_in_our_contact() -> None:
    reg = registration()
    request = first(reg)
    reg.on_response(ok(request, contact_expires=300, expires=3600), T0)
    status = reg.status(T0)
    assert status.expires_in == 300  # the Contact parameter wins over the header
    assert reg.next_deadline() == T0 + 180


def test_expires_header_when_our_contact_has_no_parameter() -> None:
    reg = registration()
    request = first(reg)
    response = ok(request, contact_expires=None, expires=900)
    response.headers.add("Contact", "<sip:phone@203.0.113.9:5060>;expires=30")  # another UA's
    reg.on_response(response, T0)
    assert reg.status(T0).expires_in == 900


def test_contact_rewritten_for_nat_is_still_ours() -> None:
    reg = registration()
    request = first(reg)
    response = build_response(request, 200)
    response.headers.add("Contact", "<sip:alice@192.0.2.77:40000>;expires=200")
    reg.on_response(response, T0)
    assert reg.status(T0).expires_in == 200


def test_grant_longer_than_asked_is_not_trusted() -> None:
    reg = registration(RegistrationSpec("alice", expires=600))
    request = first(reg)
    reg.on_response(ok(request, 86400), T0)
    assert reg.status(T0).expires_in == 600


def test_no_expiry_anywhere_means_what_we_asked() -> None:
    reg = registration(RegistrationSpec("alice", expires=600))
    request = first(reg)
    reg.on_response(build_response(request, 200), T0)
    assert reg.status(T0).expires_in == 600


def test_a_2xx_granting_zero_is_a_failure() -> None:
    reg = registration()
    request = first(reg)
    reg.on_response(ok(request, 0), T0)
    status = reg.status(T0)
    assert status.state is RegistrationState.FAILED
    assert status.last_error == "registrar granted no time"
    assert status.expires_in is None
    assert reg.next_deadline() == T0 + 30


# --- status ----------------------------------------------------------------------------


def test_status_values_while_registered() -> None:
    reg = registration()
    registered(reg, granted=120)
    status = reg.status(T0 + 20)
    assert status.trunk == "carrier"
    assert status.state is RegistrationState.REGISTERED
    assert status.aor == "sip:alice@127.0.0.10"
    assert status.contact == "sip:alice@198.51.100.1:5060"
    assert status.expires_in == 100
    assert (status.last_status, status.last_error) == (200, None)
    assert status.registered_at == T0
    assert status.next_attempt_in == 40
    assert status.failures == 0
    assert reg.registered(T0 + 20)


def test_binding_that_lapses_during_refresh_is_not_reported_registered() -> None:
    reg = registration()
    registered(reg, granted=120)
    assert reg.due(T0 + 60) is not None  # the refresh is out, unanswered
    assert reg.status(T0 + 119).state is RegistrationState.REGISTERED
    lapsed = reg.status(T0 + 121)
    assert lapsed.state is RegistrationState.REGISTERING
    assert lapsed.expires_in is None
    assert not reg.registered(T0 + 121)


# --- digest authentication ---------------------------------------------------------------


def test_401_is_answered_with_credentials_the_registrar_accepts() -> None:
    server = digest_server()
    reg = registration(auth=client())
    request = first(reg)
    resend = reg.on_response(challenge(request, server, T0), T0)
    assert resend is not None
    assert resend.call_id == request.call_id
    assert resend.cseq.seq == 2
    assert branch(resend) != branch(request)
    line = server.credentials_in(resend)
    assert line is not None
    assert server.verify(resend, line, T0).status is AuthStatus.OK
    assert reg.next_deadline() is None  # the re-send is in flight
    assert reg.on_response(ok(resend, 120), T0) is None
    assert reg.status(T0).state is RegistrationState.REGISTERED
    # The refresh reuses the nonce (preauthorized): no second round trip.
    refresh = reg.due(T0 + 60)
    assert refresh is not None
    assert refresh.cseq.seq == 3
    line = server.credentials_in(refresh)
    assert line is not None
    assert server.verify(refresh, line, T0 + 60).ok


def test_407_is_answered_in_proxy_authorization() -> None:
    server = digest_server()
    reg = registration(auth=client())
    request = first(reg)
    resend = reg.on_response(challenge(request, server, T0, status=407), T0)
    assert resend is not None
    line = server.credentials_in(resend, "Proxy-Authorization")
    assert line is not None
    assert server.verify(resend, line, T0).ok


def test_wrong_password_fails_without_looping_then_backs_off_to_the_cap() -> None:
    server = digest_server()
    reg = registration(RegistrationSpec("alice", retry_min=30, retry_max=600), client("wrong"))
    now = T0
    delays = []
    for _ in range(7):
        request = first(reg, now)
        resend = reg.on_response(challenge(request, server, now), now)
        assert resend is not None  # each fresh challenge is answered once
        line = server.credentials_in(resend)
        assert line is not None
        assert server.verify(resend, line, now).status is AuthStatus.FAILED
        assert reg.on_response(challenge(resend, server, now), now) is None  # no second answer
        status = reg.status(now)
        assert status.state is RegistrationState.FAILED
        assert status.last_error == "authentication failed"
        assert status.last_status == 401
        deadline = reg.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
    assert delays == [30, 60, 120, 240, 480, 600, 600]
    assert reg.status(now).failures == 7


def test_401_without_credentials_is_a_failure() -> None:
    reg = registration()
    request = first(reg)
    assert reg.on_response(challenge(request, digest_server(), T0), T0) is None
    status = reg.status(T0)
    assert (status.state, status.last_error) == (
        RegistrationState.FAILED,
        "no credentials to answer",
    )


def test_credentials_never_reach_the_logs() -> None:
    server = digest_server()
    reg = registration(auth=client())
    with capture_logs() as logs:
        request = first(reg)
        resend = reg.on_response(challenge(request, server, T0), T0)
        assert resend is not None
        reg.on_response(challenge(resend, server, T0), T0)
    assert [entry["event"] for entry in logs] == ["registration.failed"]
    assert PASSWORD not in repr(logs)
    assert "Digest" not in repr(logs)


# --- 423, failures and backoff -----------------------------------------------------------


def test_423_retries_at_once_with_min_expires() -> None:
    reg = registration(RegistrationSpec("alice", expires=60))
    request = first(reg)
    retry = reg.on_response(answer(request, 423, Min_Expires="1800"), T0)
    assert retry is not None
    assert retry.headers.get("Expires") == "1800"
    assert retry.contacts[0].params["expires"] == "1800"
    assert (retry.call_id, retry.cseq.seq) == (request.call_id, 2)
    assert reg.on_response(ok(retry, 1800), T0) is None
    assert reg.status(T0).expires_in == 1800
    refresh = reg.due(T0 + 1800 - 120)
    assert refresh is not None
    assert refresh.headers.get("Expires") == "1800"  # the raised value sticks


def test_423_again_and_again_falls_back_to_backoff() -> None:
    reg = registration(RegistrationSpec("alice", expires=60))
    request = first(reg)
    for minimum in ("120", "240"):
        retry = reg.on_response(answer(request, 423, Min_Expires=minimum), T0)
        assert retry is not None
        assert retry.headers.get("Expires") == minimum
        request = retry
    assert reg.on_response(answer(request, 423, Min_Expires="480"), T0) is None
    status = reg.status(T0)
    assert (status.state, status.last_error) == (RegistrationState.FAILED, "423 again and again")
    assert reg.next_deadline() == T0 + 30
    # After the backoff, a further raise is honoured again.
    request = first(reg, T0 + 30)
    assert request.headers.get("Expires") == "240"
    retry = reg.on_response(answer(request, 423, Min_Expires="480"), T0 + 30)
    assert retry is not None
    assert retry.headers.get("Expires") == "480"


def test_absurd_min_expires_is_capped() -> None:
    reg = registration(RegistrationSpec("alice", expires=60))
    request = first(reg)
    retry = reg.on_response(answer(request, 423, Min_Expires="9" * 30), T0)
    assert retry is not None
    assert retry.headers.get("Expires") == str(2**32 - 1)


@pytest.mark.parametrize("min_expires", [None, "30", "60", "soon"])
def test_423_without_a_higher_min_expires_is_a_failure(min_expires: str | None) -> None:
    reg = registration(RegistrationSpec("alice", expires=60))
    request = first(reg)
    response = answer(request, 423)
    if min_expires is not None:
        response.headers.add("Min-Expires", min_expires)
    assert reg.on_response(response, T0) is None
    status = reg.status(T0)
    assert status.state is RegistrationState.FAILED
    assert status.last_status == 423
    assert reg.next_deadline() == T0 + 30


def test_503_retry_after_is_honoured() -> None:
    reg = registration()
    request = first(reg)
    assert reg.on_response(answer(request, 503, Retry_After="900"), T0) is None
    status = reg.status(T0)
    assert status.state is RegistrationState.RETRYING
    assert (status.last_status, status.last_error) == (503, "503 Service Unavailable")
    assert reg.next_deadline() == T0 + 900
    assert status.next_attempt_in == 900


def test_retry_after_with_comment_and_params() -> None:
    reg = registration()
    request = first(reg)
    reg.on_response(answer(request, 503, Retry_After="120 (maintenance);duration=60"), T0)
    assert reg.next_deadline() == T0 + 120


def test_retry_after_beyond_a_day_waits_a_day() -> None:
    reg = registration()
    request = first(reg)
    reg.on_response(answer(request, 503, Retry_After="99999999999999"), T0)
    assert reg.next_deadline() == T0 + 86400


def test_short_retry_after_does_not_undercut_the_backoff() -> None:
    reg = registration()
    request = first(reg)
    reg.on_response(answer(request, 503, Retry_After="5"), T0)
    assert reg.next_deadline() == T0 + 30


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (302, RegistrationState.FAILED),  # no redirects followed
        (403, RegistrationState.FAILED),
        (404, RegistrationState.FAILED),
        (603, RegistrationState.FAILED),
        (408, RegistrationState.RETRYING),
        (500, RegistrationState.RETRYING),
        (504, RegistrationState.RETRYING),
    ],
)
def test_final_failures(status: int, state: RegistrationState) -> None:
    reg = registration()
    request = first(reg)
    assert reg.on_response(answer(request, status), T0) is None
    assert reg.status(T0).state is state
    assert reg.status(T0).last_status == status
    assert reg.next_deadline() == T0 + 30


def test_timeout_retries_with_growing_backoff_and_success_resets_it() -> None:
    reg = registration()
    first(reg)
    reg.on_failure(408, T0)
    status = reg.status(T0)
    assert (status.state, status.last_status, status.last_error) == (
        RegistrationState.RETRYING,
        408,
        "timeout",
    )
    assert reg.next_deadline() == T0 + 30
    request = first(reg, T0 + 30)
    assert request.cseq.seq == 2
    reg.on_failure(503, T0 + 30)
    assert reg.status(T0 + 30).last_error == "transport error"
    assert reg.next_deadline() == T0 + 90
    request = first(reg, T0 + 90)
    reg.on_response(ok(request, 3600), T0 + 90)
    assert reg.status(T0 + 90).failures == 0
    refresh = first(reg, T0 + 90 + 3480)
    reg.on_failure(408, T0 + 3570, reg.context(refresh).cseq)
    assert reg.next_deadline() == T0 + 3600  # back to retry_min
    # The failed refresh left the binding alive until it lapses.
    assert reg.status(T0 + 3570).expires_in == pytest.approx(120)


def test_provisional_responses_are_ignored() -> None:
    reg = registration()
    request = first(reg)
    assert reg.on_response(answer(request, 100), T0) is None
    assert reg.next_deadline() is None
    assert reg.status(T0).state is RegistrationState.REGISTERING


# --- reconnects and stale answers --------------------------------------------------------


def test_reconnected_registers_again_at_once() -> None:
    reg = registration()
    registered(reg, granted=3600)
    reg.reconnected(T0 + 100)
    assert reg.next_deadline() == T0 + 100
    request = reg.due(T0 + 100)
    assert request is not None
    assert request.cseq.seq == 2


def test_reconnect_leaves_the_register_in_flight_alone() -> None:
    """The REGISTER in flight opened the new flow (or its transaction fails and
    is retried): no second one for the same binding."""
    reg = registration()
    request = first(reg)
    assert reg.reconnected(T0 + 5) is False
    assert reg.due(T0 + 5) is None
    reg.on_response(ok(request, 3600), T0 + 6)
    assert reg.status(T0 + 6).state is RegistrationState.REGISTERED
    assert reg.reconnected(T0 + 7) is True
    assert reg.due(T0 + 7) is not None


def test_answers_for_another_call_id_are_ignored() -> None:
    reg = registration()
    request = first(reg)
    response = ok(request, 3600)
    response.headers.set("Call-ID", "someone-else")
    assert reg.on_response(response, T0) is None
    assert reg.next_deadline() is None


# --- unregistering -------------------------------------------------------------------------


def test_unregister_asks_for_zero_and_stops() -> None:
    reg = registration()
    registered(reg)
    request = reg.unregister()
    assert request.headers.get("Expires") == "0"
    assert request.contacts[0].params["expires"] == "0"
    assert (request.call_id, request.cseq.seq) == (reg.call_id, 2)
    assert reg.next_deadline() is None
    reg.on_response(ok(request, 0), T0 + 1)
    status = reg.status(T0 + 1)
    assert status.state is RegistrationState.UNREGISTERED
    assert status.expires_in is None
    assert reg.next_deadline() is None
    reg.reconnected(T0 + 2)
    assert reg.due(T0 + 10_000) is None


def test_unregister_answers_a_challenge() -> None:
    server = digest_server()
    reg = registration(auth=client())
    registered(reg)
    request = reg.unregister()
    resend = reg.on_response(challenge(request, server, T0), T0)
    assert resend is not None
    line = server.credentials_in(resend)
    assert line is not None
    assert server.verify(resend, line, T0).ok
    reg.on_failure(408, T0 + 32)
    assert reg.status(T0 + 32).state is RegistrationState.UNREGISTERED


def test_unregister_challenged_without_credentials_ends() -> None:
    reg = registration()
    registered(reg)
    request = reg.unregister()
    assert reg.on_response(challenge(request, digest_server(), T0), T0) is None
    assert reg.status(T0).state is RegistrationState.UNREGISTERED
    assert reg.status(T0).last_status == 401


# --- incoming calls, the table, the spec ---------------------------------------------------


def test_matches_contact() -> None:
    reg = registration(RegistrationSpec("alice", contact_user="sbc%31"))
    assert reg.matches_contact(parse_uri("sip:sbc1@198.51.100.1:5060"))
    assert reg.matches_contact(parse_uri("sip:sbc1@198.51.100.1"))
    assert not reg.matches_contact(parse_uri("sip:sbc2@198.51.100.1:5060"))
    assert not reg.matches_contact(parse_uri("sip:sbc1@203.0.113.1:5060"))
    assert not reg.matches_contact(parse_uri("tel:+15551234"))


def test_registrations_table() -> None:
    table = Registrations()
    carrier = registration()
    other = Registration(
        trunk("udp", "backup", "127.0.0.11"), INTERFACE, RegistrationSpec("bob"), None, None
    )
    assert table.sync([carrier, other]) == []
    assert table.next_deadline() == 0.0
    sent = table.due(T0)
    assert [(r.trunk.name, req.cseq.seq) for r, req in sent] == [("carrier", 1), ("backup", 1)]
    carrier.on_response(ok(sent[0][1], 600), T0)
    other.on_response(ok(sent[1][1], 120), T0)
    assert table.next_deadline() == T0 + 60
    assert table.trunk_for_contact(parse_uri("sip:bob@198.51.100.1:5060")) == "backup"
    assert table.trunk_for_contact(parse_uri("sip:carol@198.51.100.1:5060")) is None
    assert [s.trunk for s in table.statuses(T0)] == ["carrier", "backup"]

    # A reload: the same binding is kept (and takes the new credentials), a changed one
    # is replaced, a removed one is handed back for unregistering.
    new_auth = client()
    same = registration(auth=new_auth)
    gone = table.sync([same])
    assert table.get("carrier") is carrier
    assert carrier.auth is new_auth
    assert gone == [other]
    changed = registration(RegistrationSpec("alice", expires=60))
    assert table.sync([changed]) == [carrier]
    assert table.get("carrier") is changed
    assert table.get("backup") is None


@pytest.mark.parametrize(
    "options",
    [
        {"aor_user": ""},
        {"aor_user": "a b"},
        {"aor_user": "alice", "contact_user": "x@y"},
        {"aor_user": "alice\r\nVia: evil"},
        {"aor_user": "alice", "expires": 0},
        {"aor_user": "alice", "retry_min": 0},
        {"aor_user": "alice", "retry_min": 60, "retry_max": 30},
        {"aor_user": "alice", "refresh_margin": -1},
    ],
)
def test_spec_refuses_nonsense(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        RegistrationSpec(**options)  # type: ignore[arg-type]


def test_a_reconnected_flow_registers_again_at_once() -> None:
    """After a TCP/TLS reconnect (the transport says so) the binding is renewed now,
    whatever its refresh time; other trunks' registrations are left alone."""
    table = Registrations()
    tls = registration(RegistrationSpec("alice", contact_port=5061), peer=trunk("tls"))
    udp = registration(peer=trunk("udp", name="other"))
    table.sync([tls, udp])
    registered(tls, granted=3600)
    registered(udp, granted=3600)
    assert table.due(T0 + 10) == []
    assert table.reconnected("tls", "127.0.0.10", 5061, T0 + 10) == ["carrier"]
    assert table.reconnected("tcp", "127.0.0.10", 5061, T0 + 10) == []  # another flow
    [(again, request)] = table.due(T0 + 10)
    assert again is tls
    assert request.cseq.seq == 2  # the same binding, renewed
    # That REGISTER opening the next connection is no reason to send another.
    assert table.reconnected("tls", "127.0.0.10", 5061, T0 + 11) == []
    assert table.due(T0 + 11) == []
