"""Topic specs and their idempotent creation through the Kafka admin client.

Production code creates topics from here; the embedded broker (tests and demos) uses it too.
Works against any Kafka-protocol broker (Kafka, Tansu, Redpanda); TLS and SASL options are
passed to the admin client as they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from aiokafka.protocol.admin import (  # type: ignore[import-untyped]
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request  # type: ignore[import-untyped]

from schemas.errors import JourneyLedgerError

__all__ = [
    "BrokerError",
    "TopicCreationError",
    "TopicMismatchError",
    "TopicSpec",
    "TopicSpecLike",
    "ensure_topics",
    "ensure_topics_sync",
    "group_members",
    "run_blocking",
]

_T = TypeVar("_T")

_TOPIC_ALREADY_EXISTS = 36
_GROUP_ID_NOT_FOUND = 69


class BrokerError(JourneyLedgerError):
    """Root of every error raised talking to a broker: topic creation and the embedded broker."""


class TopicCreationError(BrokerError):
    """A topic could not be created or its metadata could not be read back."""


class TopicMismatchError(TopicCreationError):
    """A topic already exists with a partition count different from the one asked for."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partition count and topic-level config entries."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


TopicSpecLike = TopicSpec | tuple[str, int] | tuple[str, int, Mapping[str, str]]
"""A :class:`TopicSpec` or a plain ``(name, partitions[, config])`` tuple."""


def _as_spec(item: TopicSpecLike) -> TopicSpec:
    """Normalise a tuple or :class:`TopicSpec` into a :class:`TopicSpec`."""
    if isinstance(item, TopicSpec):
        return item
    if len(item) == 2:
        return TopicSpec(item[0], item[1])
    return TopicSpec(item[0], item[1], dict(item[2]))


def run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion, in a helper thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[TopicSpecLike],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    verify: bool = True,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Create topics that do not exist yet; existing ones are left alone (idempotent).

    With ``verify`` (the default) it then waits until every partition of every topic has a
    leader in the metadata and raises :class:`TopicMismatchError` if a topic exists with a
    different partition count than asked for. ``client_options`` (TLS, SASL, client id) are
    passed to the admin client.
    """
    specs = [_as_spec(t) for t in topics]
    if not specs:
        return
    options = {**(client_options or {}), "bootstrap_servers": bootstrap_servers}
    options["request_timeout_ms"] = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(**options)
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name,
                        s.partitions,
                        replication_factor,
                        topic_configs=dict(s.config),
                    )
                    for s in specs
                ]
            )
            _check_create_response(response)
            if verify:
                await _await_topic_metadata(admin, specs)
    except TimeoutError as exc:
        raise TopicCreationError(
            f"creating topics {[s.name for s in specs]} on {bootstrap_servers} took over "
            f"{timeout_s:.0f}s"
        ) from exc
    except KafkaError as exc:
        raise TopicCreationError(
            f"creating topics {[s.name for s in specs]} on {bootstrap_servers} failed: {exc!r}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


class _DescribeGroups(
    Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]  # type: ignore[misc]
):
    """DescribeGroups at version 2 at most: every group's members, read the way it is written."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(self, request_struct_class: Any) -> Any:
        """The request at the version the broker and aiokafka share."""
        return request_struct_class(self.groups)


async def group_members(
    bootstrap_servers: str,
    groups: Iterable[str],
    *,
    timeout_s: float = 30.0,
    client_options: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """How many members each consumer group has now (0: empty, dead or unknown to the
    broker), asked of each group's coordinator (DescribeGroups); `BrokerError` when the broker
    cannot say."""
    wanted = list(dict.fromkeys(groups))
    options = {**(client_options or {}), "bootstrap_servers": bootstrap_servers}
    options["request_timeout_ms"] = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(**options)
    found = dict.fromkeys(wanted, 0)
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            responses = []
            for group in wanted:
                coordinator = await admin.find_coordinator(group)
                # `describe_consumer_groups` asks v3 where the broker has it, and aiokafka 0.14
                # reads a v3 answer with the v2 layout (garbage, or a decoding error)
                responses.append(await admin._client.send(coordinator, _DescribeGroups([group])))
            for response in responses:
                for described in response.groups:
                    code, group, members = described[0], described[1], described[5]
                    if code not in (0, _GROUP_ID_NOT_FOUND):
                        raise BrokerError(f"describing consumer group {group!r}: error code {code}")
                    if group in found and code == 0:
                        found[group] = len(members)
    except TimeoutError as exc:
        raise BrokerError(
            f"describing consumer groups on {bootstrap_servers} took over {timeout_s:.0f}s"
        ) from exc
    except KafkaError as exc:
        raise BrokerError(
            f"describing consumer groups on {bootstrap_servers} failed: {exc!r}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return found


def ensure_topics_sync(
    bootstrap_servers: str,
    topics: Iterable[TopicSpecLike],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    verify: bool = True,
) -> None:
    """Blocking wrapper around :func:`ensure_topics` (usable inside or outside an event loop)."""
    run_blocking(
        ensure_topics(
            bootstrap_servers,
            list(topics),
            replication_factor=replication_factor,
            timeout_s=timeout_s,
            verify=verify,
        )
    )


def _check_create_response(response: Any) -> None:
    """Raise TopicCreationError for per-topic errors other than 'already exists'."""
    failures: list[str] = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            failures.append(f"{name}: error code {code}" + (f" ({message})" if message else ""))
    if failures:
        raise TopicCreationError("topic creation failed: " + "; ".join(failures))


async def _await_topic_metadata(admin: Any, specs: list[TopicSpec]) -> None:
    """Wait until metadata lists every topic with all partitions led; check partition counts."""
    wanted = {s.name: s.partitions for s in specs}
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(list(wanted))
        by_name = {t["topic"]: t for t in described}
        pending = False
        for name, partitions in wanted.items():
            topic = by_name.get(name)
            if topic is None or topic["error_code"] != 0:
                pending = True
                continue
            found = len(topic["partitions"])
            if found and found != partitions:
                raise TopicMismatchError(
                    f"topic {name!r} exists with {found} partitions, expected {partitions}"
                )
            if found == 0 or any(
                p["error_code"] != 0 or p["leader"] < 0 for p in topic["partitions"]
            ):
                pending = True
        if not pending:
            return
        await asyncio.sleep(0.1)
