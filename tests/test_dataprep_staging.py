"""staging and outputs without Beam: staged results round-trip, result files are written whole."""

from __future__ import annotations

import json

from x2vlm_core.dataprep.outputs import delete_file, pretty_json, write_file
from x2vlm_core.dataprep.staging import bucket_of, read_staged, remove_staging, write_staged


def test_staged_entries_come_back_from_every_bucket_of_their_name_only(tmp_path):
    staging = str(tmp_path / ".prepare-staging-x")
    lines = [json.dumps({"n": n}) for n in range(6)]
    for bucket in (0, 1):
        write_staged(staging, "rejects", bucket, [line for line in lines if bucket_of(line, 2) == bucket])
    write_staged(staging, "read", 0, [json.dumps({"n": 99})])
    assert sorted(e["n"] for e in read_staged(staging, "rejects")) == list(range(6))
    assert read_staged(staging, "read") == [{"n": 99}]
    # Lines are sorted in their file, so a rerun writes the same bytes whatever the arrival order.
    written = (tmp_path / ".prepare-staging-x" / "read-00000.jsonl").read_text()
    assert written == '{"n": 99}\n'
    remove_staging(staging)
    assert not (tmp_path / ".prepare-staging-x").exists()


def test_bucket_of_is_stable_and_in_range():
    assert bucket_of('{"key": "a"}', 16) == bucket_of('{"key": "a"}', 16)
    assert {bucket_of(str(n), 4) for n in range(200)} == {0, 1, 2, 3}


def test_result_files_replace_old_ones_whole_and_leave_no_temporary(tmp_path):
    target = tmp_path / "sub" / "stats.json"
    write_file(str(target), b"old")
    write_file(str(target), pretty_json({"b": 1, "a": [1]}))
    assert target.read_bytes() == b'{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["stats.json"]
    delete_file(str(target))
    delete_file(str(target))  # already gone: nothing to do
    assert not target.exists()
