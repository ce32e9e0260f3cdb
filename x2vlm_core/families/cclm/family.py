"""CCLM (cross-view language modeling): X²-VLM's image encoder, a multilingual (XLM-R) text
encoder and a separate cross encoder (the official ``XVLMPlusBase`` layout), pre-trained on
multilingual captions and parallel text; zero- and few-shot cross-lingual fine-tuning."""

from __future__ import annotations

from typing import Any

from x2vlm_core.families.cclm import official
from x2vlm_core.families.cclm.checkpoint import adapt_cclm_state
from x2vlm_core.families.cclm.collate import xlmr_text_encoder
from x2vlm_core.families.cclm.config import CCLM_PRESETS, CCLMConfig, cclm_config
from x2vlm_core.families.cclm.config import FAMILY as NAME
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.families.cclm.pretrain import RECIPE
from x2vlm_core.families.cclm.reference_outputs import reference_outputs
from x2vlm_core.families.spec import ModelFamily, OfficialFormat, StateDict
from x2vlm_core.release.model_folder import fit_image_resolution
from x2vlm_core.tasks import TASKS
from x2vlm_core.text.xlmr import save_multilingual_tokenizer

SUPPORTED_TASKS = ("retrieval", "grounding", "vqa", "nlvr2", "xvnli")


def describe(config: CCLMConfig) -> str:
    vision, cross = config.vision, config.cross
    if config.swin is not None:
        text = config.text
        return (
            f"A CCLM multilingual vision-language model (`{config.name}`, the original CCLM): a Swin image "
            f"encoder ({sum(config.swin.depths)} blocks, output width {config.vision_width}) and one "
            f"{config.text_encoder.arch} stack of {text.fusion_start_at} text layers and "
            f"{text.num_layers - text.fusion_start_at} fusion layers (width {text.hidden_size}) that attend to "
            "the image (or to a translation), trained on images with captions in several languages and on "
            "sentence pairs."
        )
    return (
        f"A CCLM multilingual vision-language model (`{config.name}`): a BEiT-2 image encoder "
        f"({vision.depth} blocks, width {vision.width}), a {config.text_encoder.arch} text encoder "
        f"(width {config.text_width}) and {cross.num_layers} cross-encoder layers that attend to the image "
        "(or to a translation), trained on images with captions in several languages and on sentence pairs."
    )


def adapt_checkpoint(model: CCLM, state: StateDict) -> StateDict:
    # X²-VLM checkpoints: fusion layers -> cross encoder, text encoder replaced; then the image size.
    return fit_image_resolution(model, adapt_cclm_state(model, state))


def save_tokenizer(config: Any, out_dir: Any) -> None:
    save_multilingual_tokenizer(config.tokenizer, out_dir)  # XLM-R's sentencepiece model, not a vocab.txt


FAMILY = ModelFamily(
    name=NAME,
    title="CCLM",
    config_class=CCLMConfig,
    model_class=CCLM,
    presets=CCLM_PRESETS,
    tasks={name: TASKS[name] for name in SUPPORTED_TASKS},
    refusals={
        "captioning": "its text encoder has no masked-LM decoder to caption with",
        "grounding_weakly": "the official CCLM code has no weakly supervised grounding recipe",
        "video_retrieval": "it takes no video input (no frame position embedding)",
        "video_qa": "it takes no video input (no frame position embedding)",
    },
    pretrain=RECIPE,
    text_encoder=xlmr_text_encoder,
    save_tokenizer=save_tokenizer,
    describe=describe,
    languages="multilingual",
    build_config=cclm_config,
    adapt_checkpoint=adapt_checkpoint,
    official=OfficialFormat(official.recognises, official.to_config, reference_outputs),
)
