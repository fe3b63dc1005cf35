"""The canary scan finds planted personal values in clear and normalised forms, not in ciphertext."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson

from streams.crypto.fields import encrypt_personal
from streams.crypto.keys import new_data_key
from tests.support.canary import forms, scan_blob, scan_blobs, scan_paths

NAME, EMAIL, PHONE = "Zoë Canary-Quist", "Zoe.Canary@Example.com", "07700 900461"
MARKERS = (NAME, EMAIL, PHONE)


def test_a_marker_is_found_as_written() -> None:
    hits = list(scan_blob(f"xx {NAME} yy".encode(), MARKERS, "log"))
    # one occurrence, seen in each form that matches it
    assert {(h.marker, h.form, h.where) for h in hits} == {
        (NAME, "clear", "log"),
        (NAME, "case-folded", "log"),
    }


def test_a_marker_is_found_case_folded() -> None:
    hits = list(scan_blob(b'{"email": "zoe.canary@example.com"}', MARKERS))
    assert {h.form for h in hits} == {"case-folded"}
    assert {h.marker for h in hits} == {EMAIL}


def test_a_marker_is_found_json_escaped() -> None:
    blob = json.dumps({"name": NAME}).encode()  # ensure_ascii: Zo\\u00eb
    assert NAME.encode() not in blob
    assert {h.form for h in scan_blob(blob, MARKERS)} >= {"json-escaped"}


def test_a_phone_is_found_by_its_digits_in_any_form() -> None:
    for written in ("+44 7700 900461", "07700900461", "(07700) 900-461", "447700900461"):
        hits = list(scan_blob(f"call {written} now".encode(), MARKERS))
        assert "digits" in {h.form for h in hits if h.marker == PHONE}


def test_names_and_emails_are_not_looked_for_as_digits() -> None:
    assert "digits" not in forms(NAME)
    assert "digits" not in forms(EMAIL)
    assert "digits" in forms(PHONE)


def test_every_occurrence_is_reported() -> None:
    hits = list(scan_blob(f"{EMAIL} and {EMAIL}".encode(), [EMAIL]))
    assert [h.offset for h in hits if h.form == "clear"] == [0, len(EMAIL) + 5]


def test_named_blobs_and_files_under_directories_are_scanned(tmp_path: Path) -> None:
    store = tmp_path / "rocksdb"
    (store / "sub").mkdir(parents=True)
    (store / "sub" / "000012.sst").write_bytes(b"\x00\x01" + EMAIL.lower().encode() + b"\xff")
    (store / "LOG").write_text("nothing here", encoding="utf-8")
    log = tmp_path / "worker.log"
    log.write_text(f"saw {NAME}\n", encoding="utf-8")
    hits = list(scan_paths([store, log], MARKERS))
    assert sorted({(Path(h.where).name, h.marker) for h in hits}) == [
        ("000012.sst", EMAIL),
        ("worker.log", NAME),
    ]
    found = list(scan_blobs({"events/0@5": NAME.encode(), "events/0@6": b"{}"}, MARKERS))
    assert {h.where for h in found} == {"events/0@5"}


def test_nothing_is_found_in_the_encrypted_event() -> None:
    document = {
        "event_id": "canary-1",
        "type": "chat.message",
        "occurred_at": "2024-03-11T09:00:00+00:00",
        "tenant": "acme",
        "source": {"system": "chat-vendor"},
        "customer": {"email": EMAIL, "phone": PHONE, "name": NAME},
        "payload": {"speaker": "customer", "text": f"I am {NAME}, call me on {PHONE}"},
    }
    assert len(list(scan_blob(orjson.dumps(document), MARKERS))) > 3
    source = random.Random(3).randbytes
    for _ in range(50):
        key = new_data_key(source)
        encrypted = encrypt_personal(document, key.key, key.key_id, random=source)
        assert list(scan_blob(orjson.dumps(encrypted), MARKERS)) == []
