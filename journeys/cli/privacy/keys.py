"""`journeys keys rotate`: re-wrap every customer's data keys with a new master key.

Events are not touched: their fields stay sealed under the same data keys, and only the
wrapping of those keys changes. Run it with every worker stopped (a worker running on the data
directory holds its store's lock; one running elsewhere could write a ring, or erase one,
while the rotation reads): the command asks the broker whether the workers' consumer groups
have members and refuses while they do (`--force` to rotate anyway), then start the workers
with the new key as `[privacy] master_key`.
The current key is `[privacy] master_key` / `JOURNEYS_MASTER_KEY`; the new one
`[privacy] new_master_key` / `JOURNEYS_NEW_MASTER_KEY` (an environment variable keeps it out
of the shell history and the process list). No key is ever printed: only the ids derived from
them (`mk_…`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

from journeys.cli.app import app, settings_of
from journeys.cli.errors import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, print_error
from journeys.forensics.source import read_batches
from journeys.privacy_settings import NEW_MASTER_KEY_ENV, NEW_MASTER_KEY_SETTING
from journeys.sdk.producer import BrokerUnavailableError
from journeys.settings import CHECK_BROKER, Settings
from schemas.errors import JourneyLedgerError
from streams.admin import BrokerError, group_members
from streams.config import KafkaSettings
from streams.crypto.keys import MASTER_KEY_ENV, MASTER_KEY_SETTING, KeyProvider
from streams.crypto.rotation import (
    Rotated,
    latest_rings,
    rotate_changelog_rings,
    rotate_store,
    suppressed_entries,
)
from streams.kafka.sender import BatchSender, Outgoing
from streams.store import keys
from streams.store.state import LocalStore

keys_app = typer.Typer(
    help="Manage the master key that wraps customers' data keys.", no_args_is_help=True
)
"""The `journeys keys` group."""

app.add_typer(keys_app, name="keys")


class RotationSettingError(JourneyLedgerError):
    """The master keys a rotation needs are not both set, or are the same key."""

    hint = (
        f"set {MASTER_KEY_SETTING} / {MASTER_KEY_ENV} to the current master key and "
        f"{NEW_MASTER_KEY_SETTING} / {NEW_MASTER_KEY_ENV} to the new one"
    )


class SuppressionWouldBreakError(JourneyLedgerError):
    """Suppressed identifiers are hashed with a secret of the current master key."""

    hint = (
        "a new master key stops them matching (they cannot be re-hashed: the ledger keeps no "
        "identifier); run again with --forget-suppressed to rotate anyway"
    )


class WorkersRunningError(JourneyLedgerError):
    """Workers are members of the ledger's consumer groups: they may write or erase a ring
    while the rotation reads them."""

    hint = (
        "stop every worker of this ledger and run the rotation again (a worker that died stays "
        "a member until its session times out, [kafka] session_timeout_ms); --force rotates "
        "anyway, at the risk of a ring left under the old key or an erased ring written back"
    )


async def running_workers(kafka: KafkaSettings) -> dict[str, int]:
    """The workers' consumer groups that have members now, with how many."""
    members = await group_members(
        kafka.bootstrap_servers, kafka.names().worker_groups, client_options=kafka.client_options()
    )
    return {group: count for group, count in members.items() if count}


def refuse_while_running(kafka: KafkaSettings) -> None:
    """`WorkersRunningError` naming the groups with members; `BrokerError` when the broker
    cannot say."""
    running = asyncio.run(running_workers(kafka))
    if running:
        named = ", ".join(f"{group} ({count} members)" for group, count in sorted(running.items()))
        raise WorkersRunningError(f"workers are running: consumer groups {named}")


def rotation_providers(settings: Settings) -> tuple[KeyProvider, KeyProvider]:
    """The current and the new master key (`RotationSettingError` naming what is missing)."""
    old, new = settings.privacy.provider(), settings.privacy.provider(new=True)
    if old is None:
        raise RotationSettingError(
            f"no current master key: {MASTER_KEY_SETTING} / {MASTER_KEY_ENV} is not set"
        )
    if new is None:
        raise RotationSettingError(
            f"no new master key: {NEW_MASTER_KEY_SETTING} / {NEW_MASTER_KEY_ENV} is not set"
        )
    if old.master_key_id == new.master_key_id:
        raise RotationSettingError(
            f"{NEW_MASTER_KEY_ENV} is the current master key ({old.master_key_id})"
        )
    return old, new


async def rotate_changelog(
    kafka: KafkaSettings, old: KeyProvider, new: KeyProvider, forget_suppressed: bool
) -> Rotated:
    """Re-wrap the latest ring of every customer on the identity changelog, written back to
    the partition it came from."""
    topic = kafka.names().identity_changelog
    records: list[tuple[int, bytes | None, bytes | None]] = []
    wanted = (keys.Prefix.RING.value, keys.Prefix.SUPPRESSED.value)
    async for partition, batch in read_batches(kafka, topic):
        records.extend(
            (partition, r.key, r.value) for r in batch if (r.key or b"").startswith(wanted)
        )
    held = suppressed_entries(records)
    if held and not forget_suppressed:
        raise SuppressionWouldBreakError(f"{held} suppressed identifier hashes are stored")
    writes, done = rotate_changelog_rings(latest_rings(records), old, new)
    if writes:
        producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await producer.start()
        try:
            sender = BatchSender(producer)
            await sender.send(Outgoing(topic, key, value, partition=p) for p, key, value in writes)
        finally:
            await producer.stop()
    return done


def rotate_local(data_dir: Path, partitions: int, old: KeyProvider, new: KeyProvider) -> Rotated:
    """Re-wrap the rings of a worker's ingest store under `data_dir` (none when it has none)."""
    path = data_dir / "identity"
    if not path.is_dir():
        return Rotated()
    try:
        store = LocalStore(path)
    except Exception as exc:  # rocksdict reports a held lock as a plain exception
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RotationSettingError(
            f"cannot open {path} ({first})",
            hint="stop the worker that uses this data directory, then run the rotation again",
        ) from None
    try:
        return rotate_store(store, partitions, old, new)
    finally:
        store.close()


def rotate_command(
    settings: Settings, data_dir: Path, forget_suppressed: bool, force: bool = False
) -> int:
    """Run `journeys keys rotate`; the exit status (`force`: even while workers run)."""
    try:
        old, new = rotation_providers(settings)
        kafka = settings.kafka_settings()
        if not force:
            refuse_while_running(kafka)
        logged = asyncio.run(rotate_changelog(kafka, old, new, forget_suppressed))
        local = rotate_local(data_dir, kafka.partitions, old, new)
    except (BrokerUnavailableError, BrokerError) as exc:
        print_error(f"{exc} ({CHECK_BROKER})")
        return EXIT_UNAVAILABLE
    except JourneyLedgerError as exc:
        print_error(exc, hint_apart=True)
        return EXIT_USAGE
    typer.echo(
        f"identity changelog: {logged.rings} key rings re-wrapped ({logged.data_keys} data keys) "
        f"from {old.master_key_id} to {new.master_key_id}, {logged.already} already under it"
    )
    typer.echo(
        f"{data_dir / 'identity'}: {local.rings} key rings re-wrapped ({local.data_keys} data "
        f"keys), {local.already} already under it"
    )
    typer.echo(
        f"now set {MASTER_KEY_SETTING} / {MASTER_KEY_ENV} to the new key, unset "
        f"{NEW_MASTER_KEY_ENV}, and run this on every other worker's data directory before it "
        "starts"
    )
    return EXIT_OK


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The stopped worker's data directory (default: \\[worker] data_dir)."),
    ] = None,
    forget_suppressed: Annotated[
        bool,
        typer.Option(help="Rotate although suppressed identifiers then stop matching."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Rotate although the broker shows workers running (not advised)."),
    ] = False,
) -> None:
    """Re-wrap every data key with the new master key (JOURNEYS_NEW_MASTER_KEY); events stay.

    Stop every worker first: it refuses while the workers' consumer groups have members.
    Rewrites the rings on the identity changelog and in this worker's store; run it again for
    each other worker's data directory (rings already re-wrapped are skipped). Exit status: 0
    when done, 2 on a missing or wrong key, running workers or an unreachable broker.
    """
    settings = settings_of(ctx)
    raise typer.Exit(
        rotate_command(settings, data_dir or settings.worker.data_dir, forget_suppressed, force)
    )
