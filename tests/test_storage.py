"""storage: the same calls on local folders and on gs:// (a local GCS emulator, the real client)."""

import pytest

from x2vlm_core import storage
from x2vlm_core.errors import StorageError


def test_local_round_trip_and_listing(tmp_path):
    target = storage.join(str(tmp_path), "a", "b.bin")
    storage.write_bytes(target, b"xyz")
    assert storage.read_bytes(target) == b"xyz"
    assert storage.exists(target) and not list(tmp_path.rglob("*.partial"))
    assert storage.list_uris(str(tmp_path)) == [target]
    with pytest.raises(StorageError, match="cannot read"):
        storage.read_bytes(tmp_path / "missing")


def test_gcs_round_trip_listing_and_missing_object(gcs_bucket):
    uri = storage.join(gcs_bucket, "runs", "x.txt")
    storage.write_bytes(uri, b"hello")
    assert storage.read_bytes(uri) == b"hello"
    with storage.open_uri(uri) as f:
        assert f.read() == b"hello"
    assert storage.list_uris(storage.join(gcs_bucket, "runs")) == [uri]
    with pytest.raises(StorageError, match="does not exist"):
        storage.read_bytes(storage.join(gcs_bucket, "nope"))


def test_bad_uris_are_named():
    with pytest.raises(StorageError, match="names no bucket"):
        storage.parse_gcs("gs:///x")
