"""`journeys export IDENT --tenant T`: a customer's data as JSON, for a data subject's access
request: its journey with every event decrypted, its flags and the merges that made it.

The identifier is looked up first (its customer must be of `--tenant`), then the API's export
route (`GET /v1/customers/{id}/export`, admin role) builds the document, opening the sealed
fields with the customer's key ring; written to standard output or `--output`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from journeys.cli.app import ApiOption, TokenOption, app, settings_of
from journeys.cli.errors import EXIT_OK, EXIT_USAGE, api_failure, print_error
from journeys.cli.privacy.lookup import tenant_journey
from journeys.cli.query import open_client
from journeys.sdk.client import ApiClient
from schemas.errors import JourneyLedgerError


def export_command(client: ApiClient, identifier: str, tenant: str, output: Path | None) -> int:
    """Look the customer up and write its export; the exit status."""
    try:
        with client:
            journey = tenant_journey(client, identifier, tenant)
            document = client.export(str(journey["customer_id"]), tenant)
    except JourneyLedgerError as exc:
        return api_failure(exc)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    try:
        output.write_bytes(data)
    except OSError as exc:
        print_error(f"cannot write {output}: {exc.strerror}")
        return EXIT_USAGE
    return EXIT_OK


@app.command()
def export(
    ctx: typer.Context,
    identifier: Annotated[
        str, typer.Argument(help="KIND:VALUE (email:…, phone:…) or a customer id (cus_…).")
    ],
    tenant: Annotated[str, typer.Option(help="The customer's tenant.")],
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Export a customer's data (journey with decrypted events, flags, merges) as JSON (admin).

    Exit status: 0 when written, 1 when no such customer, 2 on usage, token or connection
    errors.
    """
    try:
        client = open_client(settings_of(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None
    raise typer.Exit(export_command(client, identifier, tenant, output))
