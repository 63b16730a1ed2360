"""Pseudonymisation of the metadata and of the metadata member inside the stored zip."""

from __future__ import annotations

import io
import json
import zipfile

from greengrader.bridge.ingest import prepare
from greengrader.bridge.privacy import pseudonym, pseudonymise_metadata, replace_member
from greengrader.bridge.records import Accepted
from greengrader.payload.parse import parse_payload
from greengrader.settings import load_settings
from tests import payloads

PII = (payloads.REAL_NAME, payloads.REAL_EMAIL, payloads.REAL_SID)


def test_pseudonyms_are_keyed_stable_and_shaped() -> None:
    assert pseudonym(b"k", "email", "Ada@Example.edu") == pseudonym(b"k", "email", "ada@example.edu")
    assert pseudonym(b"k", "email", "a@b") != pseudonym(b"other", "email", "a@b")
    assert pseudonym(b"k", "email", "a@b").endswith("@pseudonym.invalid")
    assert pseudonym(b"k", "sid", "A1").startswith("sid-")


def test_metadata_keeps_ids_and_drops_identities() -> None:
    meta = pseudonymise_metadata(payloads.metadata(), b"key")
    user = meta["users"][0]
    assert user["id"] == 4242
    assert not set(PII) & set(user.values())
    assert payloads.metadata()["users"][0]["name"] == payloads.REAL_NAME  # input untouched


def test_prepare_rewrites_the_stored_zip() -> None:
    data = payloads.build()
    item = prepare(load_settings(pseudonymise=True), data, "submissions")
    assert isinstance(item, Accepted)
    for value in PII:
        assert value.encode() not in item.data
        assert value not in json.dumps(item.metadata) + json.dumps(item.users)
    reparsed = parse_payload(item.data)
    assert reparsed.source_hash == item.parsed.source_hash
    assert reparsed.users[0]["id"] == 4242
    assert item.parsed.sha256 != reparsed.sha256  # dedup key stays the bytes received
    with zipfile.ZipFile(io.BytesIO(item.data)) as zf:
        assert zf.testzip() is None


def test_prepare_without_pseudonymisation_keeps_the_bytes() -> None:
    data = payloads.build()
    item = prepare(load_settings(pseudonymise=False), data, None)
    assert isinstance(item, Accepted)
    assert item.data == data and item.users[0]["name"] == payloads.REAL_NAME


def test_replace_member_copies_other_members_verbatim() -> None:
    data = payloads.build(submission={"big.py": b"x = 1\n" * 5000})
    out = replace_member(data, "gradescope_data/hostname.txt", b"elsewhere\n")
    with zipfile.ZipFile(io.BytesIO(data)) as old, zipfile.ZipFile(io.BytesIO(out)) as new:
        assert new.read("gradescope_data/hostname.txt") == b"elsewhere\n"
        for info in old.infolist():
            if info.filename != "gradescope_data/hostname.txt":
                assert new.read(info.filename) == old.read(info.filename)
                assert new.getinfo(info.filename).compress_size == info.compress_size
