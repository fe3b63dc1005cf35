"""Requests between workers, signed with their own secret: never a client's token.

A worker asked about a customer whose partition another worker owns forwards the request.
It does not pass the caller's bearer token on (a forged members record could point the
forward at anyone); it signs the request with the inter-worker secret (`[api] peer_secret`,
`JOURNEYS_PEER_SECRET`): an HMAC-SHA256 over the method, the path with its query, a
timestamp, the tenants the caller may see and the body. The receiving worker checks the
signature and the timestamp (within `FRESHNESS_S`) and answers within those tenants only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from schemas.errors import JourneyLedgerError

SIGNATURE = "X-Journeys-Peer-Signature"
"""The request's HMAC-SHA256, hex."""

TIMESTAMP = "X-Journeys-Peer-Time"
"""When the request was signed, whole seconds since the epoch."""

TENANTS = "X-Journeys-Peer-Tenants"
"""The tenants the original caller may see: `*` for every tenant, else comma-separated."""

FRESHNESS_S = 30
"""How far a signed request's timestamp may be from the receiver's clock, either way."""

_ALL = "*"


class PeerAuthError(JourneyLedgerError):
    """A request claiming to come from another worker is not signed by the shared secret."""

    hint = "every worker needs the same [api] peer_secret (JOURNEYS_PEER_SECRET)"


def _signature(
    secret: str, method: str, path_qs: str, timestamp: str, tenants: str, body: bytes
) -> str:
    message = "\n".join(
        (
            "journeys-peer-v1",
            method.upper(),
            path_qs,
            timestamp,
            tenants,
            hashlib.sha256(body).hexdigest(),
        )
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _tenants_text(tenants: frozenset[str] | None) -> str:
    return _ALL if tenants is None else ",".join(sorted(tenants))


def sign(
    secret: str,
    method: str,
    path_qs: str,
    tenants: frozenset[str] | None,
    now: float,
    body: bytes = b"",
) -> dict[str, str]:
    """The headers that let another worker trust this request (`path_qs` exactly as sent)."""
    timestamp = str(int(now))
    scope = _tenants_text(tenants)
    return {
        TIMESTAMP: timestamp,
        TENANTS: scope,
        SIGNATURE: _signature(secret, method, path_qs, timestamp, scope, body),
    }


def verify(
    secret: str | None,
    method: str,
    path_qs: str,
    headers: Mapping[str, str],
    now: float,
    body: bytes = b"",
) -> frozenset[str] | None:
    """The tenants a signed request may see (None: every tenant); `PeerAuthError` otherwise."""
    if not secret:
        raise PeerAuthError("this worker has no peer secret: it answers no forwarded request")
    timestamp, scope, given = (headers.get(name, "") for name in (TIMESTAMP, TENANTS, SIGNATURE))
    if not (timestamp and given) or not timestamp.isdigit():
        raise PeerAuthError("not a signed request from another worker")
    expected = _signature(secret, method, path_qs, timestamp, scope, body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise PeerAuthError("the peer signature does not match")
    if abs(now - int(timestamp)) > FRESHNESS_S:
        raise PeerAuthError(f"the peer request was signed more than {FRESHNESS_S} s away from now")
    if scope == _ALL:
        return None
    return frozenset(t for t in scope.split(",") if t)
