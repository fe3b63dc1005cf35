"""The customer a data-protection command is about, looked up through the API in its tenant."""

from __future__ import annotations

from typing import Any

from journeys.sdk.client import ApiClient, ApiError


def tenant_journey(client: ApiClient, identifier: str, tenant: str) -> dict[str, Any]:
    """The journey of the customer an identifier (or customer id) names, which must belong to
    `tenant`: erasing or exporting another tenant's customer by a shared token is refused."""
    journey = client.journey(identifier)
    if journey.get("tenant") != tenant:
        raise ApiError(
            f"{identifier} is a customer of tenant {journey.get('tenant')!r}, not {tenant!r}",
            status=404,
            code="not_found",
            hint="give the customer's own tenant with --tenant",
        )
    return journey
