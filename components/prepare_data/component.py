"""KFP component: run the Beam data-preparation job and emit the shards as a Dataset."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import BEAM_IMAGE


@dsl.component(base_image=BEAM_IMAGE, install_kfp_package=False)
def prepare_data(
    sources: str,
    shards: Output[Dataset],
    shard_size: int = 64,
    max_image_side: int = 256,
    num_frames: int = 3,
    beam_options: list = [],
    allow_empty_sources: bool = False,
    snapshot: str = "",
    data_root: str = "",
):
    """Read the datasets named in the `sources` YAML and write webdataset shards.

    `beam_options` are standard Beam pipeline flags, passed through unchanged: e.g.
    ["--runner=DataflowRunner", "--project=P", "--region=R", "--temp_location=gs://B/tmp"],
    ["--runner=FlinkRunner", "--flink_master=HOST:8081", "--environment_type=DOCKER"] or
    ["--runner=SparkRunner", "--spark_master_url=spark://HOST:7077"]; none runs locally (Beam's FnApiRunner).
    A source entry that writes no sample fails the step unless `allow_empty_sources`.
    `snapshot` names the state of the data behind `sources` (a date, a dataset version): it is only
    recorded, and it is part of the step's cache key, so a new snapshot prepares the data again.
    `data_root` (gs:// on a cluster): the shards go to <data_root>/shards/<hash of the sources and
    options>/, written there by the Beam workers, and `shards` holds only a manifest (index.json and
    location.json) that the training and evaluation steps follow; empty: the shards are the artifact.
    """
    import json

    from x2vlm_core import storage
    from x2vlm_core.data.sources import load_sources
    from x2vlm_core.dataprep.beam_job import run_prepare_data
    from x2vlm_core.dataprep.data_root import shards_location, write_manifest

    source_list = load_sources(sources)
    settings = {"shard_size": shard_size, "max_image_side": max_image_side, "num_frames": num_frames}
    output = shards_location(data_root, source_list, {**settings, "snapshot": snapshot}) if data_root else shards.path
    index = run_prepare_data(
        source_list,
        output,
        **settings,
        pipeline_args=list(beam_options),
        # The output is this task's alone (its artifact folder, or the folder its inputs name):
        # what an earlier attempt left is replaced.
        overwrite=True,
        allow_empty_sources=allow_empty_sources,
    )
    if data_root:
        write_manifest(shards.path, output)
    stats = json.loads(storage.read_bytes(storage.join(output, "stats.json")))
    shards.metadata["sources"] = sources
    shards.metadata["snapshot"] = snapshot
    shards.metadata["data_uri"] = output if data_root else shards.uri
    shards.metadata["total_samples"] = index["total"]
    shards.metadata["samples"] = {
        d: {s: v["count"] for s, v in splits.items()} for d, splits in index["datasets"].items()
    }
    shards.metadata["rejects"] = stats.get("rejects_by_reason", {})
    shards.metadata["num_frames"] = num_frames
    shards.metadata["empty_splits"] = stats.get("empty_splits", {})
