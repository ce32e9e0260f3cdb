"""img2dataset output_format=files: cc3m/files/00000/key.jpg (+ .txt, .json) beside 00000.parquet listing every URL."""

from __future__ import annotations

import io

from x2vlm_core.data.synthetic.datasets import PRETRAIN_IMAGE_TEXT
from x2vlm_core.data.synthetic.drawing import jpeg_bytes
from x2vlm_core.data.synthetic.formats.img2dataset_meta import img2dataset_meta
from x2vlm_core.data.synthetic.formats.web_pairs import web_pairs
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, count: int) -> SourceEntries:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for offset, (scene, caption) in enumerate(web_pairs(world, count, "img2dataset-files")):
        key = f"00000{offset:04d}"
        world.write_bytes(f"cc3m/files/00000/{key}.jpg", jpeg_bytes(scene))
        world.write_bytes(f"cc3m/files/00000/{key}.txt", caption.encode("utf-8"))
        world.write_json(f"cc3m/files/00000/{key}.json", img2dataset_meta(key, caption, world.size))
        rows.append(img2dataset_meta(key, caption, world.size))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    world.write_bytes("cc3m/files/00000.parquet", buffer.getvalue())
    world.counts[PRETRAIN_IMAGE_TEXT]["train"] += count
    return [{"format": "img2dataset_files", "dataset": PRETRAIN_IMAGE_TEXT, "folder": world.path("cc3m/files")}]
