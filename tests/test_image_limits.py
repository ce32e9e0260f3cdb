"""One image cannot exhaust the data job's memory: decompression bombs and MemoryError are counted rejects."""

import struct
import subprocess
import sys
import textwrap
import zlib

import pytest
from PIL import Image

from x2vlm_core.data import images
from x2vlm_core.data.images import MAX_PIXELS, TOO_LARGE, load_and_validate
from x2vlm_core.data.transforms import decode_image
from x2vlm_core.dataprep import records
from x2vlm_core.dataprep.outcomes import REJECTED, SAMPLES
from x2vlm_core.errors import DataError

PILLOW_DEFAULT_LIMIT = 89_478_485  # Pillow's own MAX_IMAGE_PIXELS: it warns above it and refuses above twice it


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """The probe's image: a 12000x12000 LA PNG of zeros, 280 KB on disk, 144 Mpx decoded."""
    width = height = 12000
    row, packer = bytes(1 + 2 * width), zlib.compressobj(9)  # filter byte + LA pixels per row
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 4, 0, 0, 0))
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )
    return path


def test_under_a_2gb_cap_the_bomb_kills_a_plain_decode_and_is_a_reject_here(bomb):
    """The attack as found, in a process capped at 2 GB of address space like the job's worker."""
    assert bomb.stat().st_size < 300_000 and PILLOW_DEFAULT_LIMIT < 12000 * 12000 < 2 * PILLOW_DEFAULT_LIMIT
    script = textwrap.dedent(f"""
        import resource, warnings
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from PIL import Image
        from x2vlm_core.data import images
        ours, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, {PILLOW_DEFAULT_LIMIT}
        try:  # what the job did: Pillow's warning ignored, the image decoded and made RGB
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open({str(bomb)!r}) as opened:
                    opened.load()
                    images._to_rgb(opened)
            print("decoded")
        except MemoryError:
            print("MemoryError")
        Image.MAX_IMAGE_PIXELS = ours  # as x2vlm_core.data.images left it
        print(images.load_and_validate({str(bomb)!r}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["MemoryError", "(None, 'too_large')"]


def test_the_declared_size_is_checked_before_any_pixel_is_decoded(bomb, monkeypatch):
    def never(self):
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr(images.Image.Image, "load", never)
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS < 12000 * 12000
    assert load_and_validate(bomb) == (None, TOO_LARGE)
    with pytest.raises(DataError, match="pixels") as err:  # a bomb inside a shard, refused by either check
        decode_image(bomb.read_bytes(), "shard-key")
    assert "\n" not in str(err.value)


def test_pillows_warning_is_a_reject_not_a_decode(tmp_path, monkeypatch):
    """Between Pillow's limit and twice it, Pillow only warns: that is a bomb as well."""
    Image.new("RGB", (40, 40), "red").save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: above the limit, below twice it
    assert load_and_validate(tmp_path / "a.png") == (None, TOO_LARGE)


def test_memory_error_on_one_record_is_a_counted_reject(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40), "red").save(tmp_path / "a.png")
    record = {
        "kind": "image_text",
        "key": "k1",
        "dataset": "d",
        "source": "s",
        "split": "train",
        "image_paths": [str(tmp_path / "a.png")],
        "captions": ["a red square"],
    }
    assert records.process_record(record, 64)[0] == SAMPLES

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(images, "_to_rgb", out_of_memory)  # while decoding
    assert load_and_validate(tmp_path / "a.png") == (None, TOO_LARGE)
    monkeypatch.undo()
    monkeypatch.setattr(records, "resize_max_side", out_of_memory)  # while resizing
    tag, rejected = records.process_record(record, 64)
    assert tag == REJECTED and rejected["reason"] == TOO_LARGE
