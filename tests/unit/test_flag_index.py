"""The in-memory flag index the API lists flags from: filters, order, pages, withdrawals."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.outputs import FlagChange
from streams.flag_index import FlagIndex, FlagQuery, decode_cursor, encode_cursor
from tests.factories import flag_change


def change(
    customer: str, flag: str, *, change: str = "opened", tenant: str = "acme", **fields: Any
) -> FlagChange:
    body: dict[str, Any] = {"rule": "DATE_MISMATCH", "status": "open", "sites": ["leeds"]}
    body.update(fields)
    return flag_change(change, tenant, customer, flag, **body)


def index_of(*changes: FlagChange) -> FlagIndex:
    index = FlagIndex()
    for item in changes:
        index.apply(item)
    return index


def test_a_later_change_replaces_the_flag_and_withdrawn_removes_it() -> None:
    index = index_of(
        change("c1", "f1", opened_at="2026-01-01T00:00:00+00:00"),
        change(
            "c1", "f1", change="resolved", status="resolved", opened_at="2026-01-01T00:00:00+00:00"
        ),
        change("c2", "f2", opened_at="2026-01-02T00:00:00+00:00"),
        change("c2", "f2", change="withdrawn"),
    )
    assert [(f["customer_id"], f["status"]) for f in index.all()] == [("c1", "resolved")]
    assert index.changes == 4


def test_an_updated_flag_shows_its_new_message() -> None:
    at = "2026-01-01T00:00:00+00:00"
    first = "asked for order number (held from card-processor)"
    later = "asked for order number (held from web-shop)"
    index = index_of(
        change("c1", "f1", opened_at=at, message=first),
        change("c1", "f1", change="updated", opened_at=at, message=later),
    )
    assert [f["message"] for f in index.of_customer("acme", "c1")] == [later]


def test_pages_are_newest_first_and_cover_everything_once() -> None:
    index = index_of(
        *(
            change(f"c{i}", f"f{i}", opened_at=f"2026-01-{i + 1:02d}T00:00:00+00:00")
            for i in range(7)
        )
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = index.page(FlagQuery(limit=3, cursor=cursor))
        seen += [f["flag_id"] for f in page.flags]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"f{i}" for i in reversed(range(7))]


def test_filters_and_tenant_scope() -> None:
    index = index_of(
        change("c1", "f1", opened_at="2026-01-01T00:00:00+00:00"),
        change("c2", "f2", tenant="other", opened_at="2026-01-02T00:00:00+00:00"),
        change("c3", "f3", rule="DUPLICATE_ORDER", sites=[], opened_at="2026-01-03T00:00:00+00:00"),
        change("c4", "f4", status="resolved", opened_at="2026-01-04T00:00:00+00:00"),
    )

    def ids(**query: Any) -> set[str]:
        return {f["flag_id"] for f in index.page(FlagQuery(**query)).flags}

    assert ids(tenants=frozenset({"acme"})) == {"f1", "f3", "f4"}
    assert ids(rule="DUPLICATE_ORDER") == {"f3"}
    assert ids(status="resolved") == {"f4"}
    assert ids(site="leeds") == {"f1", "f2", "f4"}
    assert ids(since="2026-01-02T00:00:00+00:00", until="2026-01-03T00:00:00+00:00") == {"f2", "f3"}


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    position = ("2026-01-01T00:00:00+00:00", "cus_1", "flg_1")
    assert decode_cursor(encode_cursor(position)) == position
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor("not-a-cursor")


def _handling(state: str, assignee: str | None = None) -> dict[str, Any]:
    return {"state": state, "assignee": assignee}


def test_handling_and_assignee_filters() -> None:
    index = index_of(
        change("c1", "f1", opened_at="2026-01-01T00:00:00+00:00"),  # nobody acted
        change("c2", "f2", opened_at="2026-01-02T00:00:00+00:00", handling=_handling("unacknowledged")),
        change("c3", "f3", opened_at="2026-01-03T00:00:00+00:00", handling=_handling("acknowledged")),
        change("c4", "f4", opened_at="2026-01-04T00:00:00+00:00",
               handling=_handling("assigned", "sam@acme")),
        change("c5", "f5", opened_at="2026-01-05T00:00:00+00:00",
               handling=_handling("snoozed", "leeds-desk")),
    )  # fmt: skip

    def ids(**query: Any) -> set[str]:
        return {f["flag_id"] for f in index.page(FlagQuery(**query)).flags}

    assert ids(handling="unacknowledged") == {"f1", "f2"}
    assert ids(handling="assigned") == {"f4", "f5"}
    assert ids(handling="mine", user="sam@acme") == {"f4"}
    assert ids(handling="mine", user="ana@acme") == set()
    assert ids(assignee="leeds-desk") == {"f5"}
    assert ids(handling="assigned", assignee="sam@acme") == {"f4"}
    with pytest.raises(ValueError, match="handling"):
        ids(handling="everything")


def test_a_flag_is_found_by_id_only_among_the_callers_tenants() -> None:
    index = index_of(
        change("c1", "flg_1", opened_at="2026-01-01T00:00:00+00:00"),
        change("c2", "flg_2", tenant="other", opened_at="2026-01-02T00:00:00+00:00"),
    )
    found = index.find("flg_1", frozenset({"acme"}))
    assert found is not None
    assert found[0] == ("acme", "c1", "flg_1")
    assert index.find("flg_2", frozenset({"acme"})) is None
    assert index.find("flg_2", None) is not None
    assert index.find("flg_9", None) is None
