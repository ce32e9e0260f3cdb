"""output_tree without Beam: which files make up an output, and what a run may remove."""

from __future__ import annotations

import pytest

from x2vlm_core.dataprep.output_tree import (
    clear,
    clear_leftovers,
    is_complete,
    job_files,
    move_into_place,
    named_files,
    refuse_complete,
)
from x2vlm_core.errors import ConfigError


def _touch(root, *relatives):
    for relative in relatives:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x")


def test_only_the_jobs_own_files_that_the_index_does_not_name_are_removed(tmp_path):
    _touch(
        tmp_path,
        "index.json",
        "stats.json",
        "rejects.jsonl",
        "d/train-00000.tar",
        "d/train-00001.tar",
        "d/answers.json",
        "old/val-00000.tar",
        "old/answers.json",
        "d/notes.tar",
        "d/sub/train-00009.tar",
        "README.md",
        ".prepare-staging-abc/read-00000.jsonl",
        ".prepare-build-abc/d/train-00000.tar",
        "d/train-00002.tar.tmp-123",
    )
    index = {"datasets": {"d": {"train": {"shards": [{"path": "d/train-00000.tar"}]}}}}
    named = named_files(index, ["d/answers.json"])
    assert named == {"index.json", "stats.json", "rejects.jsonl", "d/train-00000.tar", "d/answers.json"}
    removed = clear(str(tmp_path), keep=named)
    assert sorted(removed) == [
        ".prepare-build-abc/d/train-00000.tar",
        ".prepare-staging-abc/read-00000.jsonl",
        "d/train-00001.tar",
        "d/train-00002.tar.tmp-123",
        "old/answers.json",
        "old/val-00000.tar",
    ]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "README.md",
        "d/answers.json",
        "d/notes.tar",
        "d/sub/train-00009.tar",
        "d/train-00000.tar",
        "index.json",
        "rejects.jsonl",
        "stats.json",
    ]
    assert not (tmp_path / ".prepare-build-abc").exists() and not (tmp_path / ".prepare-staging-abc").exists()


def test_a_complete_output_is_refused_without_overwrite_and_leftovers_go_without_touching_it(tmp_path):
    _touch(tmp_path, "stats.json", "d/train-00000.tar")
    assert not is_complete(str(tmp_path))
    refuse_complete(str(tmp_path), overwrite=False)  # incomplete: the run clears and rebuilds it
    _touch(tmp_path, "index.json", ".prepare-build-x/d/train-00000.tar")
    with pytest.raises(
        ConfigError, match=r"already holds a complete prepare-data output \(index.json\); pass --overwrite"
    ):
        refuse_complete(str(tmp_path), overwrite=False)
    refuse_complete(str(tmp_path), overwrite=True)
    clear_leftovers(str(tmp_path))
    assert sorted(job_files(str(tmp_path))) == ["d/train-00000.tar", "index.json", "stats.json"]


def test_a_build_moves_into_place_file_by_file(tmp_path):
    build, out = tmp_path / ".prepare-build-1", tmp_path
    _touch(build, "d/train-00000.tar", "stats.json")
    (build / "stats.json").write_bytes(b"new")
    _touch(out, "stats.json")
    move_into_place(str(build), str(out), ["d/train-00000.tar", "stats.json"])
    assert (out / "stats.json").read_bytes() == b"new" and (out / "d/train-00000.tar").is_file()
    assert not list(build.rglob("*.*"))
