"""Bans, and CDRs: filters onto CdrQuery, pages with a cursor, CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from admin_fakes import T0, FakeContext, assert_problem, cdr, client

from sbc.cdr import CSV_FIELDS, MAX_LIMIT, Disposition
from sbc.guard import Ban

# --- bans -----------------------------------------------------------------------------


def banned() -> FakeContext:
    return FakeContext(
        ban_list=[
            Ban("192.0.2.66", "scanner", T0, T0 + 3600),
            Ban("2001:db8::66", "rate", T0 + 5, T0 + 65),
        ]
    )


def test_bans_are_listed() -> None:
    assert client(banned()).get("/bans").json() == [
        {"source": "192.0.2.66", "reason": "scanner", "since": T0, "until": T0 + 3600},
        {"source": "2001:db8::66", "reason": "rate", "since": T0 + 5, "until": T0 + 65},
    ]


def test_lifting_a_ban() -> None:
    ctx = banned()
    response = client(ctx).delete("/bans/192.0.2.66")
    assert response.status_code == 204
    assert response.content == b""
    assert [ban.source for ban in ctx.ban_list] == ["2001:db8::66"]


def test_lifting_a_ban_on_an_ipv6_address_in_any_spelling() -> None:
    ctx = banned()
    assert client(ctx).delete("/bans/2001:DB8:0::0066").status_code == 204
    assert ctx.unbanned == ["2001:db8::66"]


def test_lifting_a_ban_nobody_has_is_404() -> None:
    ctx = banned()
    assert (
        "192.0.2.1 is not banned"
        in assert_problem(client(ctx).delete("/bans/192.0.2.1"), 404)["detail"]
    )
    assert len(ctx.ban_list) == 2


# --- CDRs -----------------------------------------------------------------------------


BUSY_N = 10_000  # after every other record, and its id never clashes with theirs
BUSY_ID = f"call-{BUSY_N}"


def with_records(count: int = 5) -> FakeContext:
    records = [cdr(n) for n in range(1, count + 1)]
    records.append(
        cdr(
            BUSY_N,
            calling="+4930123",
            called="+4989456",
            ingress_trunk="pbx",
            egress_trunk="carrier",
            disposition=Disposition.BUSY,
            final_status=486,
            answer=None,
        )
    )
    return FakeContext(records=records)


def test_cdrs_page_newest_first_with_totals() -> None:
    body = client(with_records()).get("/cdrs", params={"limit": 3}).json()
    assert [item["id"] for item in body["items"]] == [BUSY_ID, "call-5", "call-4"]
    assert (body["total"], body["limit"], body["offset"]) == (6, 3, 0)
    busy = body["items"][0]
    assert busy["disposition"] == "busy"
    assert busy["duration_s"] == 0.0
    answered = body["items"][1]
    assert answered["duration_s"] == 60.0
    assert answered["setup_ms"] == 1500.0
    assert answered["a_to_b"]["packets"] == 0


def test_cdrs_next_cursor_walks_every_record_once() -> None:
    api = client(with_records())
    seen: list[str] = []
    params: dict[str, object] = {"limit": 4}
    for _ in range(10):  # bounded
        body = api.get("/cdrs", params=params).json()
        seen += [item["id"] for item in body["items"]]
        if body["next"] is None:
            break
        params = {"limit": 4, "after": body["next"]}
    assert seen == [BUSY_ID, "call-5", "call-4", "call-3", "call-2", "call-1"]


def test_cdr_filters_become_the_query() -> None:
    ctx = with_records()
    params = {
        "since": "2023-11-14T22:13:22Z",
        "until": str(T0 + 4),
        "trunk": "carrier",
        "number": "212",
        "prefix": "true",
        "disposition": "answered",
        "closed_only": "true",
        "offset": "0",
    }
    body = client(ctx).get("/cdrs", params=params).json()
    assert [item["id"] for item in body["items"]] == ["call-3", "call-2"]
    query = ctx.queries[-1]
    assert (query.since, query.until) == (T0 + 2, T0 + 4)
    assert (query.trunk, query.number, query.prefix) == ("carrier", "212", True)
    assert query.disposition is Disposition.ANSWERED
    assert query.closed_only is True


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("1700000002", T0 + 2),
        ("1700000002.5", T0 + 2.5),
        ("2023-11-14T22:13:22", T0 + 2),  # no offset: UTC
        ("2023-11-14T23:13:22+01:00", T0 + 2),
        ("2023-11-14T23:13:22 01:00", T0 + 2),  # an unencoded + arrives as a space
        ("2023-11-14 22:13:22Z", T0 + 2),
    ],
)
def test_times_are_epoch_or_iso_8601(since: str, expected: float) -> None:
    ctx = with_records()
    assert client(ctx).get("/cdrs", params={"since": since}).status_code == 200
    assert ctx.queries[-1].since == expected


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"since": "yesterday"}, "since: 'yesterday' is neither epoch seconds nor ISO-8601"),
        ({"until": "nan"}, "until: 'nan' is neither epoch seconds nor ISO-8601"),
        ({"since": "inf"}, "since: 'inf' is neither epoch seconds nor ISO-8601"),
        ({"since": "2023-13-45"}, "since: '2023-13-45' is neither epoch seconds nor ISO-8601"),
        ({"since": "10", "until": "5"}, "since must be before until"),
        ({"after": "garbage"}, "bad cursor 'garbage'"),
    ],
)
def test_bad_cdr_query_is_a_400_problem(params: dict[str, str], detail: str) -> None:
    ctx = with_records()
    assert assert_problem(client(ctx).get("/cdrs", params=params), 400)["detail"] == detail
    assert ctx.queries == []


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": str(MAX_LIMIT + 1)}, {"disposition": "lost"}]
)
def test_out_of_range_cdr_parameters_are_422(params: dict[str, str]) -> None:
    assert_problem(client(with_records()).get("/cdrs", params=params), 422)


def test_a_broken_store_is_503() -> None:
    ctx = FakeContext(store_broken=True)
    body = assert_problem(client(ctx).get("/cdrs"), 503)
    assert body["detail"] == "the CDR store is unavailable"
    assert "malformed" not in str(body)
    assert_problem(client(ctx).get("/cdrs.csv"), 503)


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("path", ["/cdrs.csv", "/cdrs?format=csv"])
def test_csv_export_has_the_header_and_a_row_per_record(path: str) -> None:
    response = client(with_records(2)).get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    assert response.text.endswith("\r\n")
    header, *rows = parse_csv(response.text)
    assert tuple(header) == CSV_FIELDS
    assert [row[0] for row in rows] == [BUSY_ID, "call-2", "call-1"]
    row = dict(zip(header, rows[1], strict=True))
    assert row["a_call_id"] == "2@192.0.2.10"
    assert row["start"] == "2023-11-14T22:13:22.000+00:00"
    assert row["disposition"] == "answered"
    assert row["calling"] == "+13105550199"  # a number, not quoted as a formula


def test_csv_export_filters_and_runs_past_one_page() -> None:
    ctx = with_records(MAX_LIMIT + 10)
    response = client(ctx).get("/cdrs.csv", params={"trunk": "carrier", "disposition": "answered"})
    rows = parse_csv(response.text)[1:]
    assert len(rows) == MAX_LIMIT + 10
    assert len({row[0] for row in rows}) == len(rows)
    assert BUSY_ID not in {row[0] for row in rows}
    assert all(row[CSV_FIELDS.index("disposition")] == "answered" for row in rows)
    assert [query.limit for query in ctx.queries] == [MAX_LIMIT, MAX_LIMIT]


def test_csv_export_of_nothing_is_just_the_header() -> None:
    response = client(FakeContext()).get("/cdrs.csv")
    assert parse_csv(response.text) == [list(CSV_FIELDS)]
