"""Keep torchvision importable next to a CPU-only torch.

The only torchvision wheel on PyPI for our torch is a CUDA build. On CPU-only torch its C
extension does not load, and then its module body fails at
``torch.library.register_fake("torchvision::nms")`` ("operator torchvision::nms does not
exist"). That breaks ``import timm`` (which imports torchvision unconditionally) and even
transformers' model imports (they import torchvision when it is installed).

Defining the two op schemas that torchvision registers fake kernels for, before its first import,
lets it import; its Python parts (transforms, timm's layers) then work, and only the compiled
box ops (nms, roi_align) stay unavailable, which nothing here uses.

``install()`` is called from ``x2vlm_core/__init__.py``, so it runs before anything in the
library imports torchvision, timm or transformers. It costs nothing until torchvision is
imported: a meta-path hook does the work on that first import, and only when the extension
cannot load (a CUDA machine with a matching build is left alone).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

# The schemas torchvision's _meta_registrations.py attaches fake kernels to at import time.
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the torch.library fragment must outlive this call, or its ops are unregistered


def _extension_loads() -> bool:
    """Whether torchvision's compiled ops load here (the build matches this torch)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # not installed: nothing to guard
    for path in Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"):
        try:
            torch.ops.load_library(str(path))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def define_missing_schemas() -> bool:
    """Define ``torchvision::nms``/``qnms`` if the extension cannot; returns whether it did."""
    global _library
    import torch

    if _library is not None or _extension_loads():
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in SCHEMAS:
        _library.define(schema)
    return True


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs the guard once, at the first ``import torchvision``, then lets the import proceed."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            define_missing_schemas()
        return None


def install() -> None:
    if "torchvision" in sys.modules or any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _BeforeTorchvision())
