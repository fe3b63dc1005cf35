"""One identity-graph contract, run against every backend: in memory and RocksDB state.

`IdentityGraphContract` holds the cases; each backend subclasses it and says how to open a
tenant's graph (and how to open it again, for the backends that persist).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from projections.identifiers import NormalisedId, normalise
from projections.identity import IdentityChange, MemoryIdentity, customer_id_for, link
from streams.stages.ingest import StateIdentityView
from streams.store.state import BatchState, LocalStore


class Graph(Protocol):
    def customer_of(self, key: str) -> str | None: ...

    def members(self, customer_id: str) -> frozenset[str]: ...

    def phone_countries(self, nsn: str) -> frozenset[int]: ...

    def apply(self, change: IdentityChange) -> None: ...


EMAIL = normalise("email", "Sam@Example.com")
PHONE = normalise("phone", "+44 7700 900123")
NATIONAL = normalise("phone", "07700 900123")
PLATE = normalise("plate", "AB12 CDE")
SESSION = normalise("anonymous_id", "sess-9f2c")


class IdentityGraphContract:
    """The cases every identity graph backend passes."""

    def graph(self, tenant: str = "acme") -> Graph:
        raise NotImplementedError

    def reopened(self, tenant: str = "acme") -> Graph:
        """The tenant's graph as a later reader sees it."""
        return self.graph(tenant)

    def linked(self, graph: Graph, ids: list[NormalisedId], tenant: str = "acme") -> str:
        change = link(graph, tenant, ids)
        graph.apply(change)
        return change.customer_id

    def test_an_unknown_identifier_has_no_customer(self) -> None:
        graph = self.graph()
        assert graph.customer_of(EMAIL.key) is None
        assert graph.members("cus_nobody") == frozenset()
        assert graph.phone_countries("7700900123") == frozenset()

    def test_new_identifiers_make_one_customer_holding_them_all(self) -> None:
        graph = self.graph()
        customer = self.linked(graph, [EMAIL, PLATE])

        graph = self.reopened()
        assert customer == customer_id_for("acme", {EMAIL.key, PLATE.key})
        assert graph.customer_of(EMAIL.key) == customer
        assert graph.customer_of(PLATE.key) == customer
        assert graph.members(customer) == frozenset({EMAIL.key, PLATE.key})

    def test_linking_again_changes_nothing(self) -> None:
        graph = self.graph()
        customer = self.linked(graph, [EMAIL, PHONE])

        again = link(self.reopened(), "acme", [EMAIL, PHONE])
        assert not again.changed
        assert again.customer_id == customer
        assert again.absorbed == ()

    def test_a_shared_identifier_merges_two_customers(self) -> None:
        graph = self.graph()
        first = self.linked(graph, [EMAIL])
        second = self.linked(graph, [PLATE])

        change = link(graph, "acme", [EMAIL, PLATE])
        graph.apply(change)

        graph = self.reopened()
        survivor = customer_id_for("acme", {EMAIL.key, PLATE.key})
        assert change.customer_id == survivor
        assert set(change.absorbed) == {first, second} - {survivor}
        assert graph.customer_of(EMAIL.key) == graph.customer_of(PLATE.key) == survivor
        assert graph.members(survivor) == frozenset({EMAIL.key, PLATE.key})
        for old in change.absorbed:
            assert graph.members(old) == frozenset()

    def test_one_event_merges_three_customers(self) -> None:
        graph = self.graph()
        owners = {self.linked(graph, [ident]) for ident in (EMAIL, PLATE, SESSION)}

        change = link(graph, "acme", [EMAIL, PLATE, SESSION])
        graph.apply(change)

        keys = {EMAIL.key, PLATE.key, SESSION.key}
        assert change.customer_id == customer_id_for("acme", keys)
        assert set(change.absorbed) == owners - {change.customer_id}
        assert self.reopened().members(change.customer_id) == frozenset(keys)

    def test_a_national_number_finds_the_international_one(self) -> None:
        graph = self.graph()
        customer = self.linked(graph, [PHONE])
        assert PHONE.phone is not None

        graph = self.reopened()
        assert graph.customer_of(PHONE.key) == customer
        assert graph.phone_countries(PHONE.phone.nsn) == frozenset({44})
        assert self.linked(graph, [NATIONAL]) == customer_id_for("acme", {PHONE.key, NATIONAL.key})
        assert self.reopened().customer_of(PHONE.key) == self.reopened().customer_of(NATIONAL.key)

    def test_tenants_never_cross(self) -> None:
        acme = self.linked(self.graph("acme"), [EMAIL])
        other = self.linked(self.graph("globex"), [EMAIL, PLATE], tenant="globex")

        assert self.reopened("acme").customer_of(EMAIL.key) == acme
        assert self.reopened("acme").customer_of(PLATE.key) is None
        assert self.reopened("globex").customer_of(EMAIL.key) == other
        assert acme != other


class TestMemoryIdentity(IdentityGraphContract):
    @pytest.fixture(autouse=True)
    def _graphs(self) -> None:
        self.graphs: dict[str, MemoryIdentity] = {}

    def graph(self, tenant: str = "acme") -> Graph:
        return self.graphs.setdefault(tenant, MemoryIdentity())


class CommittingView:
    """The ingest stage's view of one tenant; every change is written to RocksDB at once."""

    def __init__(self, store: LocalStore, tenant: str, partition: int = 0) -> None:
        self.store = store
        self.partition = partition
        self.tenant = tenant
        self.view = StateIdentityView(BatchState(store, partition), tenant)

    def customer_of(self, key: str) -> str | None:
        return self.view.customer_of(key)

    def members(self, customer_id: str) -> frozenset[str]:
        return self.view.members(customer_id)

    def phone_countries(self, nsn: str) -> frozenset[int]:
        return self.view.phone_countries(nsn)

    def apply(self, change: IdentityChange) -> None:
        self.view.apply(change)
        self.store.write(self.partition, self.view.state.changes)
        self.view = StateIdentityView(BatchState(self.store, self.partition), self.tenant)


class TestRocksDBIdentity(IdentityGraphContract):
    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Path) -> Iterator[None]:
        self.path = tmp_path / "identity"
        self.store = LocalStore(self.path)
        yield
        self.store.close()

    def graph(self, tenant: str = "acme") -> Graph:
        return CommittingView(self.store, tenant)

    def reopened(self, tenant: str = "acme") -> Graph:
        self.store.close()
        self.store = LocalStore(self.path)
        return CommittingView(self.store, tenant)
