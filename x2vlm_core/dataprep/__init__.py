"""prepare-data: raw dataset files -> webdataset shards + index.json + stats.json + rejects.jsonl.

The per-record work is plain functions, testable without Beam: ``records`` (a record becomes a
sample or a reject), ``dedup`` (content keys, which duplicate is kept), ``sharding`` (shard
numbers, writing one shard), ``stats``, ``answers`` and ``index`` (what the driver writes at the
end), ``staging`` and ``outputs`` (moving results to the driver, writing files). ``beam_job``
alone imports Apache Beam (the ``beam`` extra): it wires those functions into a pipeline and
holds ``run_prepare_data``. Import it where the job runs, never at module level of the core.
"""
