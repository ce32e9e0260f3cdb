"""Sources in a bucket: a gs:// sources file whose paths resolve inside the bucket, read where they lie."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from x2vlm_core import storage
from x2vlm_core.data.readers.common import OUTSIDE_SOURCE, base_record
from x2vlm_core.data.shards import read_index
from x2vlm_core.data.sources import Source, load_sources
from x2vlm_core.errors import DataError


def _upload_world(root: Path, bucket: str) -> str:
    """The shapes world under ``<bucket>/world/``, its sources file rewritten with paths relative to itself,
    except the WebVid videos, named by an absolute gs:// URI; returns the sources file's URI."""
    world = storage.join(bucket, "world")
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "sources.yaml":
            storage.upload_file(path, storage.join(world, path.relative_to(root).as_posix()))
    entries = yaml.safe_load((root / "sources.yaml").read_text())["sources"]
    for entry in entries:
        for name, value in entry.items():
            if isinstance(value, str) and value.startswith(f"{root}/"):
                relative = Path(value).relative_to(root).as_posix()
                entry[name] = storage.join(world, relative) if entry["format"] == "webvid" else relative
    storage.write_bytes(storage.join(world, "sources.yaml"), yaml.safe_dump({"sources": entries}).encode())
    return storage.join(world, "sources.yaml")


@pytest.mark.slow
@pytest.mark.beam
def test_sources_in_a_bucket_give_the_shards_of_a_local_run(shapes_world, tiny_shards, gcs_bucket) -> None:
    from x2vlm_core.dataprep.beam_job import run_prepare_data

    root, _ = shapes_world
    sources = _upload_world(root, gcs_bucket)
    loaded = load_sources(sources)
    assert all(path.startswith(f"{gcs_bucket}/world/") for s in loaded for path in s.paths.values())

    out = storage.join(gcs_bucket, "out")
    run_prepare_data(sources, out, shard_size=32, max_image_side=64)  # tiny_shards' settings
    # Same bytes: the index lists every shard's sha256 and size.
    assert read_index(out) == read_index(tiny_shards)
    assert storage.read_bytes(storage.join(out, "stats.json")) == (tiny_shards / "stats.json").read_bytes()


def test_a_missing_sources_file_or_bucket_is_one_clear_line(gcs_bucket) -> None:
    for missing in (storage.join(gcs_bucket, "nowhere/sources.yaml"), "gs://no-such-bucket-x2vlm/sources.yaml"):
        with pytest.raises(
            DataError, match=r"^sources file gs://\S+ does not exist; pass the path or gs:// URI"
        ) as caught:
            load_sources(missing)
        assert "\n" not in str(caught.value)


def test_a_missing_path_in_a_gcs_sources_file_names_the_field(gcs_bucket) -> None:
    storage.write_bytes(storage.join(gcs_bucket, "data/captions.json"), b"{}")
    storage.write_bytes(storage.join(gcs_bucket, "data/images/1.jpg"), b"x")
    sources = storage.join(gcs_bucket, "data/sources.yaml")
    entry = "{format: coco_captions, dataset: d, split: train, annotations: captions.json, images: images}"
    storage.write_bytes(sources, f"sources:\n- {entry}\n".encode())
    (source,) = load_sources(sources)
    assert source.paths == {
        "annotations": f"{gcs_bucket}/data/captions.json",
        "images": f"{gcs_bucket}/data/images",
    }
    storage.write_bytes(sources, f"sources:\n- {entry.replace('images}', 'pictures}')}\n".encode())
    with pytest.raises(DataError, match=rf"sources\[0\]\.images: folder {gcs_bucket}/data/pictures does not exist"):
        load_sources(sources)
    storage.write_bytes(sources, f"sources:\n- {entry.replace('images}', 'gs://no-such-bucket-x2vlm/i}')}\n".encode())
    with pytest.raises(DataError, match=r"folder gs://no-such-bucket-x2vlm/i does not exist"):
        load_sources(sources)


def test_images_named_outside_a_gcs_source_are_rejected_unless_allowed() -> None:
    def record(image: str, allow: bool = False) -> dict:
        source = Source(
            "coco_captions",
            "d",
            "train",
            {"annotations": "gs://b/coco/captions.json", "images": "gs://b/coco/images"},
            {"allow_images_outside": allow},
        )
        return base_record(source, "k", "image_text", "train", [image])

    assert "reader_reject" not in record("gs://b/coco/images/1.jpg")
    for outside in (
        "gs://b/coco/images/../../secret/1.jpg",
        "gs://b/coco/images-2/1.jpg",
        "gs://other/coco/images/1.jpg",
    ):
        assert record(outside)["reader_reject"] == OUTSIDE_SOURCE
    assert "reader_reject" not in record("gs://b/secret/1.jpg", allow=True)


def test_a_gcs_path_lists_joins_and_reads_like_a_local_one(tmp_path, gcs_bucket) -> None:
    from x2vlm_core.gcs_path import GcsPath, relative_to

    files = {"a/x.tar": b"x", "a/y.txt": "é\r\n".encode(), "a/sub/z.tar": b"z", "a/.cache/w": b"w"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
        storage.write_bytes(storage.join(gcs_bucket, name), data)
    local, remote = tmp_path / "a", GcsPath(f"{gcs_bucket}/a")

    assert [p.name for p in local.glob("*.tar")] == [p.name for p in remote.glob("*.tar")] == ["x.tar"]
    assert sorted(p.name for p in local.iterdir()) == [p.name for p in remote.iterdir()]
    assert sorted(relative_to(p, local).as_posix() for p in local.rglob("*") if p.is_file()) == [
        relative_to(p, remote).as_posix() for p in remote.rglob("*")
    ]
    for path in (local, remote):
        assert (path / "y.txt").is_file() and (path / "sub").is_dir() and not (path / "sub").is_file()
        assert not (path / "nope").exists() and (path / "y.txt").suffix == ".txt"
        with (path / "y.txt").open(encoding="utf-8", newline="") as handle:
            assert handle.read() == "é\r\n"
    # ".." stays inside the bucket; an absolute part starts again at the bucket's root, as at "/".
    assert str(remote / "../b/./c") == f"{gcs_bucket}/b/c" and str(remote / "../../../c") == f"{gcs_bucket}/c"
    assert str(remote / "/top") == f"{gcs_bucket}/top" and str(remote / "gs://other/k") == "gs://other/k"
    # A data folder keeps its files but not hidden ones, wherever it lies.
    for root in (str(local), str(remote)):
        (source,) = load_sources([{"format": "x2vlm_image_text", "dataset": "d", "data": root}])
        assert [relative_to(p, source.path("data")).as_posix() for p in source.files("data")] == [
            "sub/z.tar",
            "x.tar",
            "y.txt",
        ]
