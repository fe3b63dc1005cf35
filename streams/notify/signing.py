"""Standard Webhooks signatures, made by the maintained `standardwebhooks` library.

The headers are `webhook-id` (the flag change's id: receivers drop repeats by it),
`webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
id.timestamp.body>`, keyed by the base64-decoded part of a `whsec_…` secret.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
"""The key lengths the Standard Webhooks specification asks for."""


def secret_problem(secret: str) -> str | None:
    """Why `secret` is not a usable `whsec_…` secret, or None; never repeats the secret."""
    if not secret.startswith(SECRET_PREFIX):
        return f"must start with {SECRET_PREFIX} followed by the base64 of the key"
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"the part after {SECRET_PREFIX} is not base64"
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return f"the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes (it is {len(key)})"
    return None


def signed_headers(secret: str, webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` sent at `at` (the body must be UTF-8)."""
    moment = at.astimezone(UTC)
    signature = Webhook(secret).sign(webhook_id, moment, body.decode("utf-8"))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }
