"""`journeys flag ack|assign|note|resolve|reopen|snooze FLAG_ID`: act on a flag through the API.

Each command asks the query API to record the action as the token's user (the API refuses a
token whose role is `viewer`) and prints the id of the event that records it; the flag shows
the change within seconds (`journeys flags --handling mine`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from journeys.cli.app import ApiOption, TokenOption, app, parse_moment, settings_of
from journeys.cli.errors import EXIT_OK, api_failure
from journeys.cli.query import open_client
from journeys.forensics.terminal import SafeConsole
from journeys.sdk.client import ApiClient
from schemas.errors import JourneyLedgerError

flag_app = typer.Typer(
    help="Act on a flag: acknowledge, assign, note, resolve, reopen or snooze it.",
    no_args_is_help=True,
)
app.add_typer(flag_app, name="flag")

FlagIdArgument = Annotated[str, typer.Argument(help="The flag's id (flg_…; journeys flags).")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note kept with the action.")]


def act_command(
    client: ApiClient,
    flag_id: str,
    action: str,
    *,
    note: str | None = None,
    assignee: str | None = None,
    until: str | None = None,
) -> int:
    """Record one action on a flag and print its event id; return the exit status."""
    try:
        with client:
            answer = client.act_on_flag(flag_id, action, note=note, assignee=assignee, until=until)
    except JourneyLedgerError as exc:
        return api_failure(exc)
    SafeConsole(highlight=False).print(
        f"{answer.get('action', action)} {answer.get('flag_id', flag_id)}: "
        f"event {answer.get('event_id', '?')} ({answer.get('tenant', '?')} · "
        f"{answer.get('customer_id', '?')})",
        markup=False,
        soft_wrap=True,
    )
    return EXIT_OK


def _act(
    ctx: typer.Context,
    api: str | None,
    token: str | None,
    flag_id: str,
    action: str,
    **fields: str | None,
) -> None:
    try:
        client = open_client(settings_of(ctx).client, api, token)
    except JourneyLedgerError as exc:
        raise typer.Exit(api_failure(exc)) from None
    raise typer.Exit(act_command(client, flag_id, action, **fields))


@flag_app.command("ack")
def acknowledge(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    note: NoteOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Acknowledge a flag: you saw it and take it on.

    Exit status: 0 when recorded, 1 when no flag the token can read has this id, 2 on usage,
    role, token or connection errors.
    """
    _act(ctx, api, token, flag_id, "acknowledge", note=note)


@flag_app.command()
def assign(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    assignee: Annotated[str, typer.Argument(help="A person or a team.")],
    note: NoteOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Assign a flag to a person or a team (exit status as `flag ack`)."""
    _act(ctx, api, token, flag_id, "assign", assignee=assignee, note=note)


@flag_app.command()
def note(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    text: Annotated[str, typer.Argument(help="The note.")],
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Add a note to a flag (exit status as `flag ack`)."""
    _act(ctx, api, token, flag_id, "note", note=text)


@flag_app.command()
def resolve(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    reason: Annotated[str, typer.Option("--reason", help="What was done (kept on the flag).")],
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Resolve a flag by hand, saying what was done (exit status as `flag ack`)."""
    _act(ctx, api, token, flag_id, "resolve", note=reason)


@flag_app.command()
def reopen(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    note: NoteOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Reopen a flag resolved by hand (exit status as `flag ack`)."""
    _act(ctx, api, token, flag_id, "reopen", note=note)


@flag_app.command()
def snooze(
    ctx: typer.Context,
    flag_id: FlagIdArgument,
    until: Annotated[str, typer.Option("--until", help="RFC 3339 time the flag comes back.")],
    note: NoteOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Put a flag aside until a moment (exit status as `flag ack`)."""
    parse_moment(until, "--until")
    _act(ctx, api, token, flag_id, "snooze", until=until, note=note)
