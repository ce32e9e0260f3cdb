"""Release names, the LATEST pointer and links in a release cannot be used to mislead readers."""

import hashlib
import re
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from test_publish import save_tiny_model
from test_publish_gcs import fake_bucket, fake_gcs_port, use_emulator  # noqa: F401  (fixtures)

from x2vlm_core import storage
from x2vlm_core.errors import ReleaseError
from x2vlm_core.release import publish
from x2vlm_core.release.fetch import fetch_release, resolve_release, verify_release
from x2vlm_core.release.publish import publish_release

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "pretrained"
    save_tiny_model(folder)
    return folder


def _clock(monkeypatch, minutes):
    """Manifests written from now on record T0 + ``minutes`` as their creation time."""
    stamp = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    monkeypatch.setattr(publish, "_now", lambda: stamp)


def test_a_version_with_a_trailing_newline_is_refused(model_dir, tmp_path):
    # The attack: "$" matches before a final newline, so the old check let "v1\n" through.
    assert re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$").match("v1\n")
    publish_release(model_dir, str(tmp_path), "m", version="v1")
    for name, version in (("m", "v1\n"), ("m\n", "v2")):
        with pytest.raises(ReleaseError, match="must be one path segment"):
            publish_release(model_dir, str(tmp_path), name, version=version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["LATEST", "v1"]  # no look-alike folder


def test_a_pointer_to_something_that_is_not_a_version_is_refused(model_dir, tmp_path):
    publish_release(model_dir, str(tmp_path), "m", version="v1")
    for pointer in ("v1\n\n", "../m/v1\n", "v1/\n"):
        (tmp_path / "m" / "LATEST").write_text(pointer)
        with pytest.raises(ReleaseError, match="which is not a version with a manifest.json"):
            resolve_release(tmp_path / "m")


def test_latest_only_moves_to_a_release_created_later(model_dir, tmp_path, monkeypatch):
    """A publish that started first (earlier manifest) but finished last must not move LATEST back."""
    _clock(monkeypatch, 2)
    publish_release(model_dir, str(tmp_path), "m", version="v2")
    _clock(monkeypatch, 1)  # v1: assembled before v2, finishing after it
    publish_release(model_dir, str(tmp_path), "m", version="v1")
    assert (tmp_path / "m" / "LATEST").read_text() == "v2\n"
    assert resolve_release(tmp_path / "m") == str(tmp_path / "m" / "v2")
    _clock(monkeypatch, 3)
    publish_release(model_dir, str(tmp_path), "m", version="v0")  # created last: it is the latest, whatever its name
    assert (tmp_path / "m" / "LATEST").read_text() == "v0\n"


def test_on_gcs_latest_is_replaced_only_at_the_generation_read(model_dir, fake_bucket, monkeypatch):  # noqa: F811
    """Two publishes race on LATEST: the other one moves it after this one read it. fake-gcs-server
    enforces the generation precondition, so this publish re-reads instead of moving it back."""
    _clock(monkeypatch, 1)
    publish_release(model_dir, fake_bucket, "m", version="v1")
    _clock(monkeypatch, 3)
    publish_release(model_dir, fake_bucket, "m", version="v3")
    pointer = f"{fake_bucket}/m/LATEST"
    storage.write_bytes(pointer, b"v1\n")  # v3 is complete; its pointer move is still to come

    real_read, reads = storage.read_with_generation, []

    def read_then_lose_the_race(uri):
        found = real_read(uri)
        if not reads:
            storage.write_bytes(pointer, b"v3\n")  # the other publish moves LATEST right after this read
        reads.append(found[0])
        return found

    monkeypatch.setattr(storage, "read_with_generation", read_then_lose_the_race)
    _clock(monkeypatch, 2)
    publish_release(model_dir, fake_bucket, "m", version="v2")
    assert reads == [b"v1\n", b"v3\n"]  # the conditional write failed, and the pointer was read again
    assert storage.read_bytes(pointer) == b"v3\n"


def test_links_in_a_local_release_are_refused_and_leak_no_hash(model_dir, tmp_path):
    release = tmp_path / "rel" / "m" / "v1"
    publish_release(model_dir, str(tmp_path / "rel"), "m", version="v1")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the reader of the logs")
    (release / "config.yaml").unlink()
    (release / "config.yaml").symlink_to(secret)  # the attack: fetch followed it and copied the target

    for read in (lambda: verify_release(release), lambda: fetch_release(release, tmp_path / "out")):
        with pytest.raises(ReleaseError, match="config.yaml is a symlink") as err:
            read()
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()

    # A plain mismatch (same size, other bytes) names neither hash, not even a prefix.
    (release / "config.yaml").unlink()
    shutil.copyfile(model_dir / "config.yaml", release / "config.yaml")
    changed = bytearray((release / "config.yaml").read_bytes())
    changed[-2] ^= 0x01
    (release / "config.yaml").write_bytes(bytes(changed))
    with pytest.raises(ReleaseError, match="does not have the sha256 the manifest lists") as err:
        verify_release(release)
    assert not re.search(r"[0-9a-f]{8}", str(err.value).replace(str(tmp_path), ""))
    assert hashlib.sha256(bytes(changed)).hexdigest()[:12] not in str(err.value)


def test_a_linked_folder_inside_a_release_is_refused(model_dir, tmp_path):
    release = tmp_path / "rel" / "m" / "v1"
    publish_release(model_dir, str(tmp_path / "rel"), "m", version="v1")
    shutil.move(release / "tokenizer", tmp_path / "elsewhere")
    (release / "tokenizer").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ReleaseError, match="tokenizer is a symlink"):
        fetch_release(release, tmp_path / "out")


def test_a_link_in_the_model_folder_is_not_published(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    (tmp_path / "secret.txt").write_text("private")
    (folder / "notes.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ReleaseError, match="notes.txt is a symlink"):
        publish_release(folder, str(tmp_path / "rel"), "m", version="v1")
    assert not (tmp_path / "rel" / "m" / "v1").exists()
