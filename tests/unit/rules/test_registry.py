"""The rule registry: every rule declared once, in its module, and everything else derived."""

from __future__ import annotations

import pkgutil

import projections.rules
from projections.rules import DERIVED, DETECTORS, REGISTRY, RULE_NAMES, enquiries, scores
from projections.settings import RULES, RuleSettings
from tests.factories import at, ev


def test_every_rule_module_is_registered_and_names_are_unique() -> None:
    modules = {
        name
        for _, name, _ in pkgutil.iter_modules(projections.rules.__path__)
        if name not in {"readers", "rule"}
    }
    registered = {rule.detect.__module__.rsplit(".", 1)[1] for rule in (*REGISTRY, *DERIVED)}
    assert registered == modules
    assert len(set(RULE_NAMES)) == len(RULE_NAMES) == 9


def test_settings_and_detectors_derive_from_the_registry() -> None:
    assert RULES == RULE_NAMES == (*DETECTORS, *(rule.name for rule in DERIVED))
    assert RuleSettings().enabled == frozenset(RULE_NAMES)


def test_derived_rules_come_after_the_base_rules_and_need_them() -> None:
    assert [rule.name for rule in DERIVED] == [scores.RULE.name]
    assert RULE_NAMES[-1] == scores.RULE.name
    assert projections.rules.needed({"DATE_MISMATCH"}) == {"DATE_MISMATCH"}
    assert projections.rules.needed({scores.RULE.name}) == {scores.RULE.name, *DETECTORS}
    assert projections.rules.needed({"DATE_MISMATCH"}, ["HOLD"]) == {"DATE_MISMATCH"}
    assert "HOLD" in projections.rules.needed({scores.RULE.name}, ["HOLD"])


def test_only_time_based_rules_declare_a_deadline() -> None:
    assert [rule.name for rule in REGISTRY if rule.deadline is not None] == [enquiries.RULE.name]
    enquiry = ev("form.submitted", {"form": "contact"}, when=at(0))
    settings = RuleSettings()
    assert projections.rules.next_deadline([enquiry], at(1), settings) == (
        at(0) + settings.enquiry_response_window
    )
    disabled = RuleSettings(enabled=frozenset(RULES) - {enquiries.RULE.name})
    assert projections.rules.next_deadline([enquiry], at(1), disabled) is None
