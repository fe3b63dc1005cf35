"""A client for the ledger's HTTP query API (`/v1`), as `journeys journey` and `journeys flags` use it.

    with ApiClient("http://localhost:8080", token) as api:
        journey = api.journey("phone:+44 7700 900123")      # or "plate:AB12CDE", "cus_…"
        page = api.flags(tenant="acme-motors", status="open", limit=20)
        every = list(api.iter_flags(status="open"))          # follows next_cursor
        mine = api.flags(handling="mine")                    # assigned to the token's user
        api.act_on_flag("flg_3f2a9c0d1b7e6a54", "resolve", note="refund sent")

Answers are the API's JSON objects as they came. Every failure is an `ApiError` whose `status`
is the HTTP status (None when no answer came) and whose hint says what to check.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from projections.flags import Flag, Severity
from projections.handling.handling import handling_from_document
from projections.journey import Merge
from projections.replay import CUSTOMER_ID, parse_query
from projections.view import IdentifierSeen, JourneyView
from schemas.codec import EVENT_ADAPTER
from schemas.errors import InvalidEventError, JourneyLedgerError
from schemas.types import parse_timestamp

UNAUTHORIZED_HINT = "check JOURNEYS_TOKEN / --token"
NOT_FOUND_HINT = (
    "check the identifier; a customer of a tenant your token does not cover looks exactly "
    "like a missing one"
)
UNREACHABLE_HINT = "is `journeys up` running? check JOURNEYS_API / --api"
FLAG_NOT_FOUND_HINT = (
    "check the flag id (journeys flags lists them); a flag of a tenant your token does not "
    "cover looks exactly like a missing one"
)
DEFAULT_TIMEOUT = 10.0


class ApiError(JourneyLedgerError):
    """The query API refused or could not answer; `status` is the HTTP status (None: no answer).

    `code` is the API's error code (`unauthorized`, `not_found`, `bad_request`, …) when it gave
    one, or `unreachable` when no connection was made.
    """

    hint = "check JOURNEYS_API / --api and JOURNEYS_TOKEN / --token"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


def api_base(url: str) -> str:
    """The API's base URL: `http://` added when no scheme is given, a trailing `/` or `/v1` cut."""
    base = url.strip().rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    return base.removesuffix("/v1")


class ApiClient:
    """A synchronous client for one API base URL and bearer token (one connection pool)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = api_base(base_url)
        try:
            self._http = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=timeout,
                transport=transport,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ApiError(
                f"{base_url!r} is not a usable API address: {exc}",
                code="bad_address",
                hint="give --api or JOURNEYS_API as http://HOST:PORT",
            ) from None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def journey(self, identifier_or_customer_id: str, tenant: str | None = None) -> dict[str, Any]:
        """The journey holding an identifier (`kind:value`) or with a customer id (`cus_…`),
        of `tenant` when given.

        Raises `UnknownIdentifierError` for a malformed identifier (before any request) and
        `ApiError` (status 404 when no journey the token can read holds it).
        """
        query = parse_query(identifier_or_customer_id)
        params = {} if tenant is None else {"tenant": tenant}
        if query.kind == CUSTOMER_ID:
            path = f"/v1/journeys/{quote(query.value, safe='')}"
        else:
            path, params = "/v1/journeys", {**params, query.kind: query.value}
        return self._get(path, params, (f"no journey found for {query}", NOT_FOUND_HINT))

    def flags(
        self,
        *,
        tenant: str | None = None,
        rule: str | None = None,
        status: str | None = None,
        site: str | None = None,
        since: str | None = None,
        until: str | None = None,
        handling: str | None = None,
        assignee: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of flags, newest first: `{"flags": [...], "next_cursor": str | None}`.

        `handling` is `unacknowledged`, `assigned` or `mine` (assigned to the token's user).
        """
        params = {
            "handling": handling,
            "assignee": assignee,
            "tenant": tenant,
            "rule": rule,
            "status": status,
            "site": site,
            "since": since,
            "until": until,
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        chosen = {k: v for k, v in params.items() if v is not None}
        missing = (f"{self.base_url} has no /v1/flags", "check JOURNEYS_API / --api")
        return self._get("/v1/flags", chosen, missing)

    def identity_stats(self, tenant: str) -> dict[str, Any]:
        """A tenant's identity graph health as the running stack holds it
        (`GET /v1/identity/stats`): customers, the largest, suspected shared values."""
        missing = (f"{self.base_url} has no /v1/identity/stats", "check JOURNEYS_API / --api")
        return self._get("/v1/identity/stats", {"tenant": tenant}, missing)

    def me(self) -> dict[str, Any]:
        """Who the token acts as: `{"user", "role", "tenants", …}`."""
        return self._get("/v1/me", {}, (f"{self.base_url} has no /v1/me", "check JOURNEYS_API"))

    def act_on_flag(
        self,
        flag_id: str,
        action: str,
        *,
        note: str | None = None,
        assignee: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """Record an action on a flag (`acknowledge`, `assign`, `note`, `resolve`, `reopen`,
        `snooze`) as the token's user: `{"event_id", "flag_id", "action", "tenant", …}`.

        Raises `ApiError`: 403 when the token's role may not act, 404 when no flag the token
        can read has this id, 400 naming the field that is wrong.
        """
        body = {"action": action, "note": note, "assignee": assignee, "until": until}
        path = f"/v1/flags/{quote(flag_id, safe='')}/actions"
        missing = (f"no flag {flag_id} among the token's tenants", FLAG_NOT_FOUND_HINT)
        return self._send(path, {k: v for k, v in body.items() if v is not None}, missing)

    def erase(self, customer_id: str, tenant: str, grounds: str) -> dict[str, Any]:
        """Erase a customer (admin role): `{"event_id", "tenant", "customer_id"}`.

        Raises `ApiError`: 403 when the token's role may not erase, 404 when the token reads
        no such customer in the tenant.
        """
        path = f"/v1/customers/{quote(customer_id, safe='')}/erasure"
        missing = (f"no customer {customer_id} in tenant {tenant}", NOT_FOUND_HINT)
        return self._send(path, {"tenant": tenant, "grounds": grounds}, missing)

    def export(self, customer_id: str, tenant: str) -> dict[str, Any]:
        """A customer's export for an access request (admin role): its journey with every
        sealed field opened, its flags and merges, under `export_version`, tenant, customer id.

        Raises `ApiError`: 403 when the token's role may not export, 404 when the token reads
        no such customer in the tenant.
        """
        path = f"/v1/customers/{quote(customer_id, safe='')}/export"
        missing = (f"no customer {customer_id} in tenant {tenant}", NOT_FOUND_HINT)
        return self._get(path, {"tenant": tenant}, missing)

    def iter_flags(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every flag matching the filters of `flags`, following `next_cursor` page by page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.flags(**filters, cursor=cursor)
            yield from page["flags"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _get(self, path: str, params: dict[str, str], not_found: tuple[str, str]) -> dict[str, Any]:
        """GET a JSON object; `not_found` is the message and hint of an `ApiError` for a 404."""
        return self._call("GET", path, not_found, params=params)

    def _send(self, path: str, body: dict[str, Any], not_found: tuple[str, str]) -> dict[str, Any]:
        """POST a JSON object, answered with one."""
        return self._call("POST", path, not_found, json=body)

    def _call(
        self, method: str, path: str, not_found: tuple[str, str], **request: Any
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **request)
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach the API at {self.base_url}: {_reason(exc)}",
                code="unreachable",
                hint=UNREACHABLE_HINT,
            ) from None
        if response.status_code >= 400:
            raise _error(response, not_found)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(
                f"the API at {self.base_url} answered {path} with something other than a JSON object",
                status=response.status_code,
                code="bad_response",
                hint="check that JOURNEYS_API / --api points at the ledger's API",
            )
        return body


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__


def _error(response: httpx.Response, not_found: tuple[str, str]) -> ApiError:
    status = response.status_code
    code: str | None = None
    message = ""
    hint: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        message = str(body["error"].get("message") or "")
        hint = body["error"].get("hint") or None
    detail = f": {message}" if message else ""
    if status == 403:
        return ApiError(
            f"the API refused ({status}){detail}",
            status=status,
            code=code or "forbidden",
            hint=str(hint or "ask an admin for a token with that role"),
        )
    if status == 401:
        return ApiError(
            f"the API refused the token ({status}){detail}",
            status=status,
            code=code or "unauthorized",
            hint=UNAUTHORIZED_HINT,
        )
    if status == 404:
        message, hint = not_found
        return ApiError(message, status=status, code=code or "not_found", hint=hint)
    if status < 500:
        return ApiError(
            f"the API rejected the request ({status}){detail}",
            status=status,
            code=code or "bad_request",
            hint=str(hint or "check the options given"),
        )
    return ApiError(
        f"the API failed ({status}){detail}",
        status=status,
        code=code or "server_error",
        hint=str(hint or "see the worker's log; try again"),
    )


def view_from_dict(data: dict[str, Any]) -> JourneyView:
    """A journey as the API returns it (`view_to_dict`'s shape), back as a `JourneyView`."""
    try:
        return JourneyView(
            tenant=data["tenant"],
            customer_id=data["customer_id"],
            as_of=parse_timestamp(data["as_of"]),
            identifiers=tuple(
                IdentifierSeen(
                    i["kind"], i["value"], tuple(i["systems"]), i.get("not_used_for_matching")
                )
                for i in data["identifiers"]
            ),
            # The ledger's own output: read as it is (`redacted` kept, nothing left to mask).
            events=tuple(EVENT_ADAPTER.validate_python(e) for e in data["events"]),
            flags=tuple(flag_from_dict(f) for f in data["flags"]),
            names=tuple(data.get("names", ())),
            linked_by=dict(data["linked_by"]) if "linked_by" in data else None,
            merges=tuple(_merge_from_dict(m) for m in data["merges"]) if "merges" in data else None,
        )
    except (KeyError, TypeError, ValueError, InvalidEventError) as exc:
        raise ApiError(
            f"the API's journey could not be read: {exc}",
            code="bad_response",
            hint="use --format json, or a journeys CLI of the same version as the API",
        ) from None


def _merge_from_dict(data: dict[str, Any]) -> Merge:
    return Merge(
        parse_timestamp(data["at"]),
        data["event_id"],
        data["identifier"],
        data["from_customer"],
        data["into"],
        data.get("decision"),
    )


def flag_from_dict(data: dict[str, Any]) -> Flag:
    """A flag as the API returns it (`flag_to_dict`'s shape), back as a `Flag`."""
    resolved = data.get("resolved_at")
    return Flag(
        flag_id=data["flag_id"],
        rule=data["rule"],
        severity=Severity(data["severity"]),
        message=data["message"],
        event_ids=tuple(data["event_ids"]),
        opened_at=parse_timestamp(data["opened_at"]),
        resolved_at=parse_timestamp(resolved) if resolved else None,
        resolution=data.get("resolution"),
        systems=tuple(data.get("systems", ())),
        sites=tuple(data.get("sites", ())),
        handling=handling_from_document(data["handling"]) if data.get("handling") else None,
    )
