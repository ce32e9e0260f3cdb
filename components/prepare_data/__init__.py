"""prepare-data stage: raw datasets -> webdataset shards, with an Apache Beam job.

``run_prepare_data`` lives in ``beam_pipeline``; it is loaded on first use so that importing
this package (e.g. to compile the KFP component) does not need Apache Beam.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_prepare_data"]


def __getattr__(name: str) -> Any:
    if name == "run_prepare_data":
        from components.prepare_data.beam_pipeline import run_prepare_data

        return run_prepare_data
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
