"""Processor state in RocksDB (rocksdict): a batch overlay, offsets kept with the state.

Each processor keeps one RocksDB per worker. Every key is prefixed by the input partition it
belongs to, so a partition's state can be dropped when the partition moves away and restored
from the compacted changelog topic when it comes back. A batch's state changes, the input
offset and the changelog position are written in one WriteBatch: after a crash the state and
the offsets agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rocksdict import Options, Rdict, WriteBatch

from streams.store.keys import CHANGELOG_KEY, partition_prefix


class LocalStore:
    """One processor's RocksDB on this worker."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self._db = Rdict(str(path), options)

    def get(self, partition: int, key: bytes) -> bytes | None:
        """A state value of one partition."""
        value = self._db.get(partition_prefix(partition) + key)
        return value if value is None else bytes(value)

    def position(self, partition: int, which: bytes) -> int | None:
        """A stored position: input offset, changelog position or in-flight batch end."""
        value = self.get(partition, which)
        return None if value is None else int(value)

    def write(
        self,
        partition: int,
        changes: dict[bytes, bytes | None],
        changelog_next: int | None = None,
    ) -> None:
        """Apply a batch of changes (None deletes) and positions atomically."""
        prefix = partition_prefix(partition)
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(prefix + key)
            else:
                batch.put(prefix + key, value)
        if changelog_next is not None:
            batch.put(prefix + CHANGELOG_KEY, str(changelog_next).encode())
        self._db.write(batch)

    def items(
        self, partition: int, prefix: bytes = b"", after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """The state entries of one partition (positions included), optionally by key prefix,
        and only those after the key `after` (a scan resumed where it stopped)."""
        start = partition_prefix(partition)
        wanted = start + prefix
        iterator = self._db.iter()
        iterator.seek(wanted if after is None else start + after + b"\x00")
        while iterator.valid():
            key = bytes(iterator.key())
            if not key.startswith(wanted):
                break
            yield key[len(start) :], bytes(iterator.value())
            iterator.next()

    def store_wide(self, key: bytes) -> bytes | None:
        """A record kept outside every partition (`keys.IDENTITY_ROOT_KEY`), or None."""
        value = self._db.get(key)
        return value if value is None else bytes(value)

    def put_store_wide(self, key: bytes, value: bytes) -> None:
        """Keep a record outside every partition: no partition's items, drop or restore sees it."""
        self._db[key] = value

    def drop_partition(self, partition: int) -> None:
        """Forget a partition's state (it moved to another worker)."""
        keys = [key for key, _ in self.items(partition)]
        self.write(partition, dict.fromkeys(keys))

    def close(self) -> None:
        """Flush and close the database."""
        self._db.close()


_READ_CACHED_BYTES = 4096
"""Values up to this size are kept once read in a batch (journeys, larger, are not)."""


_ABSENT = object()
"""What a key had in a batch's changes before a block wrote it: nothing."""

Output = TypeVar("Output")
"""What a block of `all_or_nothing` produces besides state writes (records to send)."""


class BatchState:
    """Reads through to the store, collects a batch's writes for one partition."""

    def __init__(self, store: LocalStore, partition: int) -> None:
        self.store = store
        self.partition = partition
        self.changes: dict[bytes, bytes | None] = {}
        self._children: dict[bytes, set[bytes]] = {}
        """Changed keys by what comes before their last `/`: `items` finds a customer's
        entries among a large batch's changes without scanning them all."""
        self._stored_any: dict[bytes, bool] = {}
        self._undo: dict[bytes, object] | None = None
        """Inside `all_or_nothing`: what each key written there had before (`_ABSENT`)."""
        self._read: dict[bytes, bytes | None] = {}
        """Small values (and absences) read from the store in this batch: a customer's keys
        are read again for each of its events, and the store does not change until the batch
        is persisted."""

    def stored_any(self, prefix: bytes) -> bool:
        """Whether the store held any entry under a key prefix when the batch began (asked
        once a batch per prefix: the store is not written until the batch is persisted)."""
        held = self._stored_any.get(prefix)
        if held is None:
            held = next(self.store.items(self.partition, prefix), None) is not None
            self._stored_any[prefix] = held
        return held

    def get(self, key: bytes) -> bytes | None:
        """The value as of this batch's writes so far."""
        if key in self.changes:
            return self.changes[key]
        if key in self._read:
            return self._read[key]
        value = self.store.get(self.partition, key)
        if value is None or len(value) <= _READ_CACHED_BYTES:
            self._read[key] = value
        return value

    def items(self, prefix: bytes, deep: bool = False) -> list[tuple[bytes, bytes]]:
        """The entries under a key prefix as of this batch's writes so far, by key; `deep`
        when they lie more than one `/` below a prefix ending in `/` (the batch's changes are
        then all looked through: for rare reads, as a decision's)."""
        found = dict(self.store.items(self.partition, prefix))
        changed = (
            self._children.get(prefix[:-1], ())
            if prefix.endswith(b"/") and not deep
            else [key for key in self.changes if key.startswith(prefix)]
        )
        for key in changed:
            if key.startswith(prefix) and key in self.changes:
                value = self.changes[key]
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return sorted(found.items())

    def any_under(self, prefix: bytes) -> bool:
        """Whether any entry lies one `/` below a key prefix ending in `/`, as of this batch's
        writes (stops at the first: the entries are not listed)."""
        if any(self.changes[key] is not None for key in self._children.get(prefix[:-1], ())):
            return True
        return any(key not in self.changes for key, _ in self.store.items(self.partition, prefix))

    def drop_unchanged(self) -> int:
        """Leave out of the batch's changes every write that gives a key the value it was read
        with from the store in this batch (a deadline, an index or a flag status written back
        as it was, a key deleted that was never there): no changelog record, no store write for
        it. Called once the batch is processed; returns how many were left out."""
        read = self._read
        same = [
            key
            for key, value in self.changes.items()
            if key in read and read[key] == value  # the store still holds that value
        ]
        for key in same:
            del self.changes[key]
            self._children[key.rpartition(b"/")[0]].discard(key)
        return len(same)

    def _note(self, key: bytes) -> None:
        if self._undo is not None and key not in self._undo:
            self._undo[key] = self.changes.get(key, _ABSENT)
        self._children.setdefault(key.rpartition(b"/")[0], set()).add(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Write a value at the end of the batch."""
        self._note(key)
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        """Delete a key at the end of the batch."""
        self._note(key)
        self.changes[key] = None

    @contextmanager
    def all_or_nothing(self, out: list[Output] | None = None) -> Iterator[list[Output]]:
        """Undo the writes made inside the block when it raises (the exception goes on), so a
        change half written is never persisted; costs the block's writes, not the batch's.

        The block adds what it produces (records to send) to the list it is given: they reach
        `out` only when it ends, so a block that raises sends nothing for the state it undid
        (an enclosing block's list as `out` holds them until that one ends too)."""
        outer, self._undo = self._undo, {}
        undo = self._undo
        produced: list[Output] = []
        try:
            yield produced
        except BaseException:
            for key, old in undo.items():
                if old is _ABSENT:
                    del self.changes[key]
                    self._children[key.rpartition(b"/")[0]].discard(key)
                else:
                    self.changes[key] = old  # type: ignore[assignment]
            undo.clear()
            produced.clear()
            raise
        finally:
            self._undo = outer
            if outer is not None:  # an enclosing block undoes these too
                for key, old in undo.items():
                    outer.setdefault(key, old)
        if out is not None:
            out.extend(produced)
