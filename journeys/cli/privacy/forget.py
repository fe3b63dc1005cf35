"""`journeys forget IDENT --tenant T --reason REF`: erase a customer through the API (admin).

The identifier (or customer id) is looked up first, so the erasure names the ledger's customer
id and no identifier: the event written holds no personal data. `--reason` is the request's
reference (a ticket number), never its text: it is kept in clear on the log as the audit trail.
"""

from __future__ import annotations

from typing import Annotated

import typer

from journeys.cli.app import ApiOption, TokenOption, app, settings_of
from journeys.cli.errors import EXIT_OK, api_failure
from journeys.cli.privacy.lookup import tenant_journey
from journeys.cli.query import open_client
from journeys.sdk.client import ApiClient
from schemas.errors import JourneyLedgerError
from schemas.printable import printable


def forget_command(client: ApiClient, identifier: str, tenant: str, reason: str) -> int:
    """Look the customer up, then ask the API to erase it; print what was written."""
    try:
        with client:
            journey = tenant_journey(client, identifier, tenant)
            answer = client.erase(str(journey["customer_id"]), tenant, reason)
    except JourneyLedgerError as exc:
        return api_failure(exc)
    typer.echo(
        f"erasure of {printable(str(answer.get('customer_id')))} "
        f"({printable(str(answer.get('tenant')))}) written as {printable(str(answer.get('event_id')))}:"
        " its keys are destroyed when ingest reads it"
    )
    return EXIT_OK


@app.command()
def forget(
    ctx: typer.Context,
    identifier: Annotated[
        str, typer.Argument(help="KIND:VALUE (email:…, phone:…) or a customer id (cus_…).")
    ],
    tenant: Annotated[str, typer.Option(help="The customer's tenant.")],
    reason: Annotated[
        str, typer.Option(help="The request's reference (a ticket number), not its text.")
    ],
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Erase a customer (admin role): destroy its data keys; its journey keeps a skeleton.

    Exit status: 0 when the erasure was written, 1 when no such customer, 2 on usage, token or
    connection errors.
    """
    try:
        client = open_client(settings_of(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None
    raise typer.Exit(forget_command(client, identifier, tenant, reason))
