#!/usr/bin/env python
"""Coverage-guided fuzzing of the payload parser with atheris (libFuzzer).

Run it for as long as you like; every flag after the script name is a libFuzzer flag::

    .venv/bin/python tests/fuzz/fuzz_payload.py -max_total_time=3600
    .venv/bin/python tests/fuzz/fuzz_payload.py -max_total_time=28800 -jobs=2 -workers=2 corpus/
    .venv/bin/python tests/fuzz/fuzz_payload.py crash-<sha1>      # replay one input

Every input must end as a parsed payload whose fields Postgres can store, or as a
``PayloadRejected`` with a reason from ``REASONS``; any other exception is a crash, and
libFuzzer writes the input to ``crash-<sha1>`` (``-artifact_prefix=DIR/`` moves it). Memory
is bounded by ``-rss_limit_mb`` (default here 1024: the parser runs with 8 MiB caps, so a
run that grows past that has stopped honouring them).

A seed corpus is written at start-up to ``$GREENGRADER_FUZZ_DIR/seeds`` (default
``$TMPDIR/greengrader-fuzz-payload``), from the shared Gradescope fixture payloads
(``$GREENGRADER_SHARED_DIR``, default ``<repo>/../shared``) and from the hostile builders in
``tests/payloads.py``. New inputs go to the first corpus folder you pass, else to
``$GREENGRADER_FUZZ_DIR/corpus``, which the next run resumes from.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# zipfile and the codecs are instrumented too: their branches are what the input steers.
with atheris.instrument_imports(include=["greengrader.bridge", "greengrader.payload", "zipfile", "json"]):
    from greengrader.bridge.ingest import prepare
    from greengrader.bridge.records import Rejected
    from greengrader.errors import PayloadRejected
    from greengrader.payload.limits import Limits
    from greengrader.payload.parse import ParsedPayload, parse_payload
    from greengrader.payload.reasons import REASONS
    from greengrader.payload.storable import unstorable_json
    from greengrader.settings import load_settings

MiB = 1024 * 1024
LIMITS = Limits(max_payload_bytes=8 * MiB, max_uncompressed_bytes=8 * MiB, max_zip_entries=1000)
SETTINGS = load_settings(
    max_payload_bytes=LIMITS.max_payload_bytes,
    max_uncompressed_bytes=LIMITS.max_uncompressed_bytes,
    max_compression_ratio=LIMITS.max_compression_ratio,
    max_zip_entries=LIMITS.max_zip_entries,
    pseudonymise=True,
)
DEFAULT_FLAGS = ("-rss_limit_mb=1024", "-max_len=65536", "-timeout=10")
# Tokens libFuzzer splices into inputs: zip record signatures and the names the parser
# looks for (its own dictionary learning finds the rest).
DICTIONARY = (
    b"PK\x01\x02", b"PK\x03\x04", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08",
    b"\xff\xff\xff\xff", b"\x00\x00\xa0\xa1", b"gradescope_data/", b"autograder/", b"source/",
    b"submission/", b"submission_metadata.json", b"results/results.json", b"hostname.txt", b"..",
    b'"id"', b'"assignment"', b'"course_id"', b'"users"', b'"total_points"', b'"score"', b'"tests"',
    b"NaN", b"Infinity", b"1e400", b"\\u0000", b"\\ud800", b"[[[[[[[[", b'"\xc2\xb2"',
)


def check_parsed(parsed: ParsedPayload) -> None:
    for name, value in (("metadata", parsed.metadata), ("users", parsed.users), ("results", parsed.results)):
        if value is not None and unstorable_json(value) is not None:
            raise AssertionError(f"{name} accepted but not storable: {unstorable_json(value)}")
    for text in (parsed.assignment_title, parsed.hostname, parsed.created_at):
        if text is not None and "\x00" in text:
            raise AssertionError("NUL in an accepted text field")


def test_one_input(data: bytes) -> None:
    try:
        parsed = parse_payload(data, LIMITS)
    except PayloadRejected as exc:
        if exc.reason not in REASONS:
            raise AssertionError(f"unknown reason {exc.reason!r}") from exc
        return
    check_parsed(parsed)
    item = prepare(SETTINGS, data)  # pseudonymise and rewrite the zip, as the bridge does
    if isinstance(item, Rejected):
        raise AssertionError(f"parsed, then prepare rejected it: {item.reason} {item.detail}")
    again = parse_payload(item.data, LIMITS)
    if (again.gradescope_id, again.source_hash) != (parsed.gradescope_id, parsed.source_hash):
        raise AssertionError("the pseudonymised zip parses to another submission")


def shared_payloads() -> list[Path]:
    shared = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))
    return sorted((shared / "fixtures" / "gradescope" / "hello-python" / "payloads").glob("*.zip"))


def write_seeds(folder: Path) -> int:
    from tests import payloads

    seeds = {p.name: p.read_bytes() for p in shared_payloads()}
    # Stored (uncompressed) members let byte mutations reach the JSON the parser decodes.
    seeds.update({f"stored-{k}": payloads.build(layout=k, compression=0) for k in ("nested", "flat")})
    seeds.update({f"deflated-{k}": payloads.build(layout=k) for k in ("nested", "flat")})
    seeds.update({f"hostile-{k}": v for k, v in payloads.hostile_cases().items() if 0 < len(v) <= 65536})
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    return len(seeds)


def main(argv: list[str]) -> None:
    flags = [a for a in argv[1:] if a.startswith("-")]
    inputs = [a for a in argv[1:] if not a.startswith("-")]
    # libFuzzer ends the process with exit() and no Python clean-up runs, so the work folder
    # is a fixed one, re-used: its corpus/ carries a campaign over to the next run.
    work = Path(os.environ.get("GREENGRADER_FUZZ_DIR", Path(tempfile.gettempdir()) / "greengrader-fuzz-payload"))
    extra: list[str] = []
    if not any(Path(a).is_file() for a in inputs):  # not replaying single inputs
        shutil.rmtree(seeds := work / "seeds", ignore_errors=True)
        seeds.mkdir(parents=True)
        print(f"seed corpus: {write_seeds(seeds)} inputs in {seeds}", file=sys.stderr)
        if not inputs:  # libFuzzer writes new inputs to the first folder: keep seeds apart
            (work / "corpus").mkdir(exist_ok=True)
            inputs.append(str(work / "corpus"))
        extra = [str(seeds)]
    given = {f.split("=")[0] for f in flags}
    if "-dict" not in given:
        work.mkdir(parents=True, exist_ok=True)
        (work / "zip.dict").write_text("".join(f'"{_escape(token)}"\n' for token in DICTIONARY))
        flags.append(f"-dict={work / 'zip.dict'}")
    defaults = [f for f in DEFAULT_FLAGS if f.split("=")[0] not in given]
    atheris.Setup([argv[0], *defaults, *flags, *inputs, *extra], test_one_input)
    atheris.Fuzz()


def _escape(token: bytes) -> str:
    """A libFuzzer dictionary entry: printable ASCII as is, everything else as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in token)


if __name__ == "__main__":
    main(sys.argv)
