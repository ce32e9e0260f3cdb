"""X-VLM: a Swin (or DeiT / CLIP-ViT) image encoder from timm and one BERT stack whose top layers
cross-attend to the image (the official ``XVLMBase`` layout), with ITC, ITM, MLM and box heads."""

from __future__ import annotations

from typing import Any

from x2vlm_core.config_io import from_dict
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.families.spec import ModelFamily, OfficialFormat
from x2vlm_core.families.x2vlm.reference_outputs import reference_outputs
from x2vlm_core.families.xvlm import official
from x2vlm_core.families.xvlm.checkpoint import adapt_checkpoint
from x2vlm_core.families.xvlm.config import FAMILY as NAME
from x2vlm_core.families.xvlm.config import XVLMConfig
from x2vlm_core.families.xvlm.model import XVLMModel
from x2vlm_core.families.xvlm.presets import PRESETS
from x2vlm_core.families.xvlm.pretrain import RECIPE
from x2vlm_core.tasks import TASKS
from x2vlm_core.text.wordpiece import save_wordpiece_vocab

# The official code fine-tunes on these (Retrieval.py, Grounding_bbox.py, Grounding.py, VQA.py, NLVR.py, Captioning.py).
SUPPORTED_TASKS = ("retrieval", "grounding", "grounding_weakly", "vqa", "nlvr2", "captioning")
_ENCODERS = {"swin": "Swin", "deit": "DeiT", "clip_vit": "CLIP-ViT"}


def describe(config: XVLMConfig) -> str:
    vision, text = config.vision, config.text
    blocks = sum(vision.depths) if vision.encoder == "swin" else vision.depth
    return (
        f"An X-VLM vision-language model (`{config.name}`): a {_ENCODERS[vision.encoder]} image encoder "
        f"({blocks} blocks, output width {vision.out_width}) and one BERT stack of {text.fusion_start_at} text "
        f"layers and {text.num_layers - text.fusion_start_at} fusion layers (width {text.hidden_size}) that "
        "cross-attend to the image."
    )


def wordpiece(config: Any, max_tokens: int | None) -> TextEncoder:
    return TextEncoder(config.tokenizer, max_tokens or config.max_tokens)


FAMILY = ModelFamily(
    name=NAME,
    title="X-VLM",
    config_class=XVLMConfig,
    model_class=XVLMModel,
    presets=PRESETS,
    tasks={name: TASKS[name] for name in SUPPORTED_TASKS},
    refusals={
        "video_retrieval": "it reads images only (X-VLM has no video model; use an X²-VLM video preset)",
        "video_qa": "it reads images only (X-VLM has no video model; use an X²-VLM video preset)",
        "xvnli": "it reads English only (a BERT WordPiece vocabulary; use a CCLM model)",
    },
    pretrain=RECIPE,
    text_encoder=wordpiece,
    save_tokenizer=save_wordpiece_vocab,
    describe=describe,
    languages="English",
    build_config=lambda data, where: from_dict(XVLMConfig, data, where=where),
    adapt_checkpoint=adapt_checkpoint,
    # Its parity fixture records X²-VLM's 25 outputs, which the same function computes.
    official=OfficialFormat(official.recognises, official.to_config, reference_outputs),
)
