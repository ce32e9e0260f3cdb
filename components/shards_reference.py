"""KFP component: a Dataset that refers to existing shards, so that no step downloads them."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import PUBLISH_IMAGE


@dsl.component(base_image=PUBLISH_IMAGE, install_kfp_package=False)
def shards_reference(shards_uri: str, shards: Output[Dataset]):
    """Write a manifest (index.json and location.json) of the prepare-data output at `shards_uri`.

    An importer of that folder would hand the whole corpus to the KFP launcher, which copies every
    input artifact into the pod; the manifest is a few KB and the stages stream the shards from
    the location it names. A `shards_uri` that is itself a manifest is followed to its shards.
    """
    from x2vlm_core.data.shard_location import follow_manifest
    from x2vlm_core.dataprep.data_root import write_manifest
    from x2vlm_core.release.lineage import lineage_metadata

    location = follow_manifest(shards_uri)
    write_manifest(shards.path, location)
    shards.metadata["data_uri"] = location
    shards.metadata.update(lineage_metadata({"shards": shards_uri}))
