"""The one union-find of `projections` (`regroup.disjoint`): groups equal the connected components of the links."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.regroup.disjoint import DisjointSets


def _components(items: set[int], links: list[tuple[int, int]]) -> set[frozenset[int]]:
    """Connected components by search, an independent route to the answer."""
    neighbours: dict[int, set[int]] = {item: set() for item in items}
    for a, b in links:
        neighbours[a].add(b)
        neighbours[b].add(a)
    found: set[frozenset[int]] = set()
    seen: set[int] = set()
    for start in items:
        if start in seen:
            continue
        group, todo = {start}, [start]
        while todo:
            for other in neighbours[todo.pop()] - group:
                group.add(other)
                todo.append(other)
        seen |= group
        found.add(frozenset(group))
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
def test_groups_are_the_connected_components(links: list[tuple[int, int]]) -> None:
    sets: DisjointSets[int] = DisjointSets()
    for a, b in links:
        sets.union(a, b)
    items = {x for link in links for x in link}
    assert set(sets.items()) == items
    assert {frozenset(g) for g in sets.groups().values()} == _components(items, links)
    for a, b in links:
        assert sets.find(a) == sets.find(b)


def test_an_item_never_joined_is_its_own_group() -> None:
    sets: DisjointSets[str] = DisjointSets()
    assert sets.find("a") == "a"
    sets.union("b", "c")
    assert sets.groups() == {"a": {"a"}, sets.find("b"): {"b", "c"}}
