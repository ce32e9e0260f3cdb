"""The shard reader trusts neither index.json nor the tar stream."""

import gzip
import io
import json
import tarfile

import pytest
from PIL import Image

from x2vlm_core.data.images import encode_jpeg
from x2vlm_core.data.shard_writer import write_shard
from x2vlm_core.data.shards import MAX_MEMBER_BYTES, iter_shard_samples, list_shards
from x2vlm_core.data.streaming import ShardStream, dataset_shards
from x2vlm_core.errors import DataError

JPEG = encode_jpeg(Image.new("RGB", (16, 16), "blue"))


def _samples(n):
    return [
        {"key": f"k{i}", "meta": {"key": f"k{i}", "kind": "image_text", "captions": [f"caption {i}"]}, "images": [JPEG]}
        for i in range(n)
    ]


def _prepared(root, shard_path="d/train-00000.tar", entry=None):
    """A prepare-data output of one shard; ``entry`` overrides its index entry (what an attacker writes)."""
    info = write_shard(root / "d" / "train-00000.tar", _samples(3))
    shard = {"path": shard_path, "count": 3, "bytes": info["bytes"], "sha256": info["sha256"], **(entry or {})}
    (root / "index.json").write_text(json.dumps({"datasets": {"d": {"train": {"count": 3, "shards": [shard]}}}}))
    return root


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside/x.tar", "d/../../outside/x.tar", ""])
def test_index_paths_that_leave_the_data_folder_are_refused(tmp_path, path):
    outside = tmp_path / "outside" / "x.tar"
    write_shard(outside, _samples(1))
    root = _prepared(tmp_path / "data", shard_path=path)
    if path.startswith(".."):  # the attack: the path resolves to a readable shard elsewhere
        assert (root / path).resolve() == outside.resolve()
    for read in (lambda: list_shards(root, "d", "train"), lambda: dataset_shards(str(root), "d")):
        with pytest.raises(DataError, match="leaves the data folder") as err:
            read()
        assert "\n" not in str(err.value)


def test_an_index_entry_without_its_sha256_is_refused(tmp_path):
    root = _prepared(tmp_path, entry={"sha256": None})
    with pytest.raises(DataError, match="has no valid sha256"):
        list_shards(root, "d", "train")


def test_a_changed_shard_fails_at_its_end(tmp_path):
    root = _prepared(tmp_path)
    shard = root / "d" / "train-00000.tar"
    data = bytearray(shard.read_bytes())
    at = data.index(b"caption 1")
    data[at : at + 9] = b"caption X"  # still a valid tar, with other content than the index lists
    shard.write_bytes(bytes(data))
    assert [s["meta"]["captions"] for s in iter_shard_samples([shard])][1] == ["caption X"]  # read unchecked

    with pytest.raises(DataError, match="its sha256 is not the one index.json lists"):
        list(iter_shard_samples(list_shards(root, "d", "train")))
    with pytest.raises(DataError, match="its sha256 is not the one index.json lists"):
        list(ShardStream(dataset_shards(str(root), "d")))


def test_an_intact_shard_streams_in_full(tmp_path):
    root = _prepared(tmp_path)
    assert [s["key"] for s in iter_shard_samples(list_shards(root, "d", "train"))] == ["k0", "k1", "k2"]
    assert sorted(s["key"] for s in ShardStream(dataset_shards(str(root), "d"), shuffle_buffer=2)) == ["k0", "k1", "k2"]


def _zeros_member(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def test_a_gzip_posing_as_a_tar_is_not_inflated(tmp_path):
    """The probe's bomb, scaled down: a small gzip whose one member inflates far beyond any image."""
    size = 2 * MAX_MEMBER_BYTES
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as zipped:
        with tarfile.open(fileobj=zipped, mode="w|") as tar:
            tar.addfile(_zeros_member("k0.jpg", size), io.BytesIO(bytes(size)))
    shard = tmp_path / "d" / "train-00000.tar"
    shard.parent.mkdir()
    shard.write_bytes(buffer.getvalue())
    assert shard.stat().st_size < size // 100
    with tarfile.open(shard, mode="r|*") as autodetected:  # the attack: any reader that autodetects inflates it
        assert next(iter(autodetected)).size == size

    with pytest.raises(DataError, match="unreadable shard") as err:
        list(iter_shard_samples([shard]))
    assert "\n" not in str(err.value)


def test_a_member_larger_than_the_cap_is_refused_before_it_is_read(tmp_path):
    """A plain tar whose header declares 3 GiB: refused from the header, nothing allocated."""
    shard = tmp_path / "x.tar"
    shard.write_bytes(_zeros_member("k0.jpg", 3 << 30).tobuf(format=tarfile.GNU_FORMAT) + bytes(1 << 16))
    with pytest.raises(DataError, match=f"declares {3 << 30} bytes, more than the {MAX_MEMBER_BYTES} allowed"):
        list(iter_shard_samples([shard]))
