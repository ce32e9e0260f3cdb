"""Model folders and releases: the safetensors model folder the stages pass on, sharded weights,
publishing an immutable release, fetching and verifying one, and the lineage of a run."""
