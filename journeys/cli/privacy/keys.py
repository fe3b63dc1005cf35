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
them (`mk_…`, `ik_…`).

The identity hashes (suppressed identifiers, link tags, identity-graph keys) derive from
`[privacy] identity_key` when it is set, and then survive the rotation untouched. When it is
not, they derive from the master key and a rotation would change every one: the command
refuses, saying to set `identity_key` to the current master key first (the hashes then stay),
unless `--change-identity-hashes` says the hashed state is to be rebuilt.
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
from streams.crypto.hashing import identity_key_id
from streams.crypto.keys import (
    IDENTITY_KEY_ENV,
    IDENTITY_KEY_SETTING,
    MASTER_KEY_ENV,
    MASTER_KEY_SETTING,
    KeyProvider,
    decode_key,
)
from streams.crypto.rotation import (
    Rotated,
    latest_rings,
    rotate_changelog_rings,
    rotate_store,
    suppressed_entries,
)
from streams.crypto.startup import WrongIdentityKeyError, identity_root_of, record_identity_root
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


class IdentityHashesWouldChangeError(JourneyLedgerError):
    """No identity key is set: the identity hashes derive from the master key being rotated."""

    hint = (
        f"to keep every hash, set {IDENTITY_KEY_SETTING} / {IDENTITY_KEY_ENV} to the current "
        "master key, on this command and on every worker from now on, and run it again; or "
        "pass --change-identity-hashes to rotate anyway and rebuild the hashed state "
        "(suppressed identifiers stop matching and cannot be re-hashed; link tags of events "
        "sealed before stop matching; identity-graph keys are rebuilt by `journeys rebuild`)"
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


def refuse_changing_hashes(settings: Settings, change_hashes: bool) -> str | None:
    """The id of the identity root the hashes keep through the rotation (`identity_key` set),
    None when they change with the master key (`change_hashes`); else
    `IdentityHashesWouldChangeError`."""
    if settings.privacy.identity_key is not None:
        return identity_key_id(decode_key(settings.privacy.identity_key))
    if not change_hashes:
        raise IdentityHashesWouldChangeError(
            f"{IDENTITY_KEY_SETTING} is not set, so the identity hashes (suppressed identifiers, "
            "link tags, identity-graph keys) derive from the master key: rotating it changes "
            "every one"
        )
    return None


async def rotate_changelog(
    kafka: KafkaSettings, old: KeyProvider, new: KeyProvider
) -> tuple[Rotated, int]:
    """Re-wrap the latest ring of every customer on the identity changelog, written back to
    the partition it came from; what changed, and how many suppressed hashes are stored."""
    topic = kafka.names().identity_changelog
    records: list[tuple[int, bytes | None, bytes | None]] = []
    wanted = (keys.Prefix.RING.value, keys.Prefix.SUPPRESSED.value)
    async for partition, batch in read_batches(kafka, topic):
        records.extend(
            (partition, r.key, r.value) for r in batch if (r.key or b"").startswith(wanted)
        )
    held = suppressed_entries(records)
    writes, done = rotate_changelog_rings(latest_rings(records), old, new)
    if writes:
        producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
        await producer.start()
        try:
            sender = BatchSender(producer)
            await sender.send(Outgoing(topic, key, value, partition=p) for p, key, value in writes)
        finally:
            await producer.stop()
    return done, held


def _open_store(data_dir: Path) -> LocalStore | None:
    """The worker's ingest store under `data_dir` (None when it has none)."""
    path = data_dir / "identity"
    if not path.is_dir():
        return None
    try:
        return LocalStore(path)
    except Exception as exc:  # rocksdict reports a held lock as a plain exception
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RotationSettingError(
            f"cannot open {path} ({first})",
            hint="stop the worker that uses this data directory, then run the rotation again",
        ) from None


def refuse_another_root(data_dir: Path, kept: str) -> None:
    """`WrongIdentityKeyError` when the store under `data_dir` recorded its hashes under
    another identity root than `identity_key`'s (`kept`): the rotation would keep the wrong one."""
    store = _open_store(data_dir)
    if store is None:
        return
    try:
        recorded = identity_root_of(store)
    finally:
        store.close()
    if recorded is not None and recorded != kept:
        raise WrongIdentityKeyError(
            f"{IDENTITY_KEY_SETTING} / {IDENTITY_KEY_ENV} is identity root {kept}, but the "
            f"hashes in {data_dir / 'identity'} were made with {recorded}",
            hint=f"set {IDENTITY_KEY_SETTING} / {IDENTITY_KEY_ENV} to the current master key "
            "(or the key the hashes were made with), then run the rotation again",
        )


def rotate_local(
    data_dir: Path,
    partitions: int,
    old: KeyProvider,
    new: KeyProvider,
    root_after: str | None = None,
) -> Rotated:
    """Re-wrap the rings of a worker's ingest store under `data_dir` (none when it has none),
    and record the identity root its hashes are made with after the rotation (`root_after`)."""
    store = _open_store(data_dir)
    if store is None:
        return Rotated()
    try:
        done = rotate_store(store, partitions, old, new)
        if root_after is not None:
            record_identity_root(store, root_after)
        return done
    finally:
        store.close()


def rotate_command(
    settings: Settings, data_dir: Path, change_hashes: bool = False, force: bool = False
) -> int:
    """Run `journeys keys rotate`; the exit status (`change_hashes`: even though the identity
    hashes derive from the master key; `force`: even while workers run)."""
    try:
        old, new = rotation_providers(settings)
        kept = refuse_changing_hashes(settings, change_hashes)
        if kept is not None:
            refuse_another_root(data_dir, kept)
        kafka = settings.kafka_settings()
        if not force:
            refuse_while_running(kafka)
        logged, held = asyncio.run(rotate_changelog(kafka, old, new))
        after = kept or _new_master_root(settings)
        local = rotate_local(data_dir, kafka.partitions, old, new, after)
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
    typer.echo(_hashes_changed(held, after) if kept is None else _hashes_kept(kept, held))
    typer.echo(
        f"now set {MASTER_KEY_SETTING} / {MASTER_KEY_ENV} to the new key, unset "
        f"{NEW_MASTER_KEY_ENV}, and run this on every other worker's data directory before it "
        "starts"
    )
    return EXIT_OK


def _hashes_kept(root: str, held: int) -> str:
    return (
        f"identity hashes kept: their root is {IDENTITY_KEY_SETTING} ({root}), not the master "
        f"key; {held} suppressed identifier hashes still match (keep {IDENTITY_KEY_SETTING} "
        "as it is on every worker)"
    )


def _new_master_root(settings: Settings) -> str:
    new_key = settings.privacy.new_master_key
    assert new_key is not None  # `rotation_providers` refused its absence
    return identity_key_id(decode_key(new_key))


def _hashes_changed(held: int, root: str) -> str:
    return (
        f"identity hashes changed with the master key (--change-identity-hashes; their root "
        f"is now {root}): {held} suppressed identifier hashes no longer match, link tags of "
        "events sealed before no longer match, and hashed identity-graph keys must be rebuilt "
        "(`journeys rebuild`)"
    )


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The stopped worker's data directory (default: \\[worker] data_dir)."),
    ] = None,
    change_identity_hashes: Annotated[
        bool,
        typer.Option(
            help="Rotate although \\[privacy] identity_key is unset, so every identity hash "
            "changes with the master key (suppressed identifiers, link tags, graph keys)."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Rotate although the broker shows workers running (not advised)."),
    ] = False,
) -> None:
    """Re-wrap every data key with the new master key (JOURNEYS_NEW_MASTER_KEY); events stay.

    Stop every worker first: it refuses while the workers' consumer groups have members.
    Rewrites the rings on the identity changelog and in this worker's store; run it again for
    each other worker's data directory (rings already re-wrapped are skipped). Set
    JOURNEYS_IDENTITY_KEY (to the current master key, to keep today's hashes) so that identity
    hashes survive; without it the command refuses. Exit status: 0 when done, 2 on a missing
    or wrong key, hashes that would change, running workers or an unreachable broker.
    """
    settings = settings_of(ctx)
    directory = data_dir or settings.worker.data_dir
    raise typer.Exit(rotate_command(settings, directory, change_identity_hashes, force))
