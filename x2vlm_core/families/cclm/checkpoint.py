"""Fitting checkpoints to a CCLM model: X²-VLM checkpoints, official CCLM/XVLMPlus files, transformers text encoders.

Files are read by ``checkpoint.load_state_file`` / ``sharded_weights.load_weights`` (safe loading);
this module only renames and selects tensors, as timm's ``checkpoint_filter_fn`` does.

An X²-VLM checkpoint (``text_encoder.bert.*``, one BERT stack whose top layers cross-attend) is
mapped as the official ``XVLMPlusBase.load_pretrained_xvlm`` does:

- its fusion layers (those with ``crossattention``, from ``fusion_start_at`` on) become the cross
  encoder's layers 0, 1, ...;
- with ``replace_text_encoder`` (the CCLM recipe), its text layers and embeddings are dropped, and so
  are the MLM decoder and bias (another vocabulary); the MLM transform becomes ``mlm_head``'s. The
  text encoder then comes from ``text_encoder.weights`` (e.g. an XLM-R folder) or stays random;
- without it, the text layers and embeddings fill a BERT text encoder of the same shape, and the
  whole MLM head moves to ``mlm_head``;
- vision, projections, temperature, ITM and box heads are carried over as they are.

The original CCLM (``swin`` set) has X-VLM's layout, so its official files (and X-VLM's) go
through the X-VLM family's adapter: Swin names and window, nothing else renamed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from x2vlm_core.errors import CheckpointError
from x2vlm_core.families.cclm.model import CCLM

log = logging.getLogger(__name__)

XVLM_TEXT = "text_encoder.bert."
XVLM_MLM = "text_encoder.cls."
_LAYER = re.compile(r"^text_encoder\.bert\.encoder\.layer\.(\d+)\.(.*)$")
# Buffers of the transformers text encoder that transformers no longer saves (and the official files
# still may); a task model's answer decoder is our BERT, whose position_ids are saved.
_STALE_BUFFERS = re.compile(r"^text_encoder\.embeddings\.(position_ids|token_type_ids)$")
# Parts of a transformers checkpoint that CCLM's text encoder does not have.
_NOT_TEXT_ENCODER = ("pooler.", "lm_head.", "cls.", "classifier.", "qa_outputs.")


def is_xvlm_layout(state: dict[str, torch.Tensor]) -> bool:
    return any(key.startswith(XVLM_TEXT) for key in state)


def adapt_cclm_state(
    model: CCLM, state: dict[str, torch.Tensor], replace_text_encoder: bool = True
) -> dict[str, torch.Tensor]:
    """Any supported checkpoint's state dict → this model's names (shapes are checked by the caller)."""
    if model.one_stack:
        from x2vlm_core.families.xvlm.checkpoint import adapt_checkpoint as adapt_xvlm_layout

        return adapt_xvlm_layout(model, state)
    if is_xvlm_layout(state):
        state = from_xvlm(model, state, replace_text_encoder)
        if replace_text_encoder and model.config.text_encoder.weights:
            state.update(text_encoder_state(model, model.config.text_encoder.weights))
    return {k: v for k, v in state.items() if not _STALE_BUFFERS.search(k)}


def from_xvlm(
    model: CCLM, state: dict[str, torch.Tensor], replace_text_encoder: bool = True
) -> dict[str, torch.Tensor]:
    fusion = sorted({int(m[1]) for key in state if (m := _LAYER.match(key)) and m[2].startswith("crossattention.")})
    if not fusion:
        raise CheckpointError(
            "the X²-VLM checkpoint has no fusion layers (no text_encoder.bert.encoder.layer.*.crossattention); "
            "is it a text-only BERT?"
        )
    start, wanted = fusion[0], len(model.cross_encoder.encoder.layer)
    if len(fusion) != wanted:
        raise CheckpointError(
            f"the X²-VLM checkpoint has {len(fusion)} fusion layers, this model's cross encoder {wanted}; "
            f"set cross.num_layers: {len(fusion)}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        layer = _LAYER.match(key)
        if layer and int(layer[1]) >= start:
            out[f"cross_encoder.encoder.layer.{int(layer[1]) - start}.{layer[2]}"] = value
        elif key.startswith(XVLM_TEXT):
            if not replace_text_encoder:
                out["text_encoder." + key[len(XVLM_TEXT) :]] = value
        elif key.startswith(XVLM_MLM):
            rest = key[len(XVLM_MLM) :]
            # The decoder and its bias are over X²-VLM's vocabulary, which a new text encoder does not share.
            if not replace_text_encoder or rest.startswith("predictions.transform."):
                out["mlm_head." + rest] = value
        else:
            out[key] = value
    decoder, embeddings = "mlm_head.predictions.decoder.weight", "text_encoder.embeddings.word_embeddings.weight"
    if not replace_text_encoder and decoder not in out and embeddings in out:
        out[decoder] = out[embeddings]  # X²-VLM ties them (our model folders save the tensor once); CCLM does not
    log.info(
        "mapped X²-VLM fusion layers %d-%d to cross_encoder layers 0-%d%s",
        start,
        fusion[-1],
        wanted - 1,
        "; its text encoder is replaced" if replace_text_encoder else "",
    )
    return out


def text_encoder_state(model: CCLM, source: str | Path) -> dict[str, torch.Tensor]:
    """``text_encoder.*`` weights from a transformers checkpoint (a model folder or one weights file).

    Keys may carry the task model's prefix (``roberta.``, ``bert.``); heads and pooler are left out,
    and so are layers beyond the model's depth (CCLM may keep only the lower layers of XLM-R large).
    """
    from x2vlm_core.release.model_folder import load_state_file
    from x2vlm_core.release.sharded_weights import WEIGHTS, WEIGHTS_INDEX, load_weights

    path = Path(source)
    if path.is_dir():
        if (path / WEIGHTS).is_file() or (path / WEIGHTS_INDEX).is_file():
            raw = load_weights(path)
        elif (path / "pytorch_model.bin").is_file():
            raw = load_state_file(path / "pytorch_model.bin")
        else:
            raise CheckpointError(
                f"text_encoder.weights {path}: no {WEIGHTS}, {WEIGHTS_INDEX} or pytorch_model.bin there"
            )
    else:
        raw = load_state_file(path)
    depth = len(model.text_encoder.encoder.layer)
    out, beyond = {}, 0
    for key, value in raw.items():
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        for prefix in ("roberta.", "bert.", "text_encoder."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        if key.startswith(_NOT_TEXT_ENCODER) or _STALE_BUFFERS.search(key):
            continue
        layer = re.match(r"encoder\.layer\.(\d+)\.", key)
        if layer and int(layer[1]) >= depth:
            beyond += 1
            continue
        out["text_encoder." + key] = value
    if not out:
        raise CheckpointError(
            f"text_encoder.weights {path} holds no text encoder weights (no embeddings or encoder layers)"
        )
    if beyond:
        log.info(
            "text encoder: kept the lower %d layers of %s (%d tensors of higher layers left out)", depth, path, beyond
        )
    return out
