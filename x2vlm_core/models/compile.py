"""Optional ``torch.compile`` of the encoders, one repeated block at a time.

Regional compilation: each BEiT-2 block and each BERT layer is compiled in place
(``nn.Module.compile``), not the whole model, because
- blocks of one stack run the same code with their parameters as inputs, so they share
  compiled graphs and compile time does not grow with depth;
- the code between blocks (losses, hard-negative sampling, region pooling) stays eager and
  free to change batch size from step to step;
- parameter names do not change (no ``_orig_mod.`` prefix), so checkpoints, DeepSpeed and
  the official-checkpoint loader see the same model.

Every block is compiled with ``fullgraph=True``: a graph break (Python control flow that
depends on tensor values, a host read-back) fails loudly instead of slowing down silently.
"""

from __future__ import annotations

import torch
from torch import nn

from x2vlm_core.models.blocks import transformer_blocks

# Graphs one block's code may need: training and evaluation, text-only and fused layers,
# masked and unmasked attention, then dynamic shapes. Above torch's default of 8, so a
# step never falls back to eager for having met all of them.
RECOMPILE_LIMIT = 32


def compile_encoders(
    model: nn.Module, mode: str | None = None, dynamic: bool | None = None, backend: str = "inductor"
) -> nn.Module:
    """Compile ``model``'s transformer blocks (``blocks.transformer_blocks``) in place; returns ``model``.

    ``mode``, ``dynamic`` and ``backend`` are ``torch.compile``'s (e.g. ``mode="max-autotune"``
    on GPU; ``backend="aot_eager"`` to check graph capture without code generation).
    Compilation happens lazily, at each block's first call with new shapes or flags.
    """
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for block in transformer_blocks(model):
        block.compile(fullgraph=True, mode=mode, dynamic=dynamic, backend=backend)
    return model
