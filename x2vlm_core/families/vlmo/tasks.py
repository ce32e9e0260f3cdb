"""VLMo's own fine-tuning recipes, as its official code runs them, on the shared task modules.

- retrieval: dual-encoder ITC alone for training; evaluation ranks every candidate by that
  similarity, with no ITM re-ranking (``k_test`` and ``itm_batch_size`` do not apply);
- VQA: a classifier over the answer list (``vqa_classifier`` on the pooled fusion CLS), trained
  with binary cross-entropy on each answer's soft score; the top-scoring answer is the prediction;
- NLVR2: ``nlvr2_classifier`` over the two pooled fusion CLS (the second image with its own
  token type), with cross-entropy.
"""

from __future__ import annotations

import functools
import logging
import random
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, sample_images
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model
from x2vlm_core.families.spec import task_variant
from x2vlm_core.families.vlmo import objectives
from x2vlm_core.families.vlmo.config import VLMoConfig
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.release.model_folder import init_from, read_model_config
from x2vlm_core.tasks import nlvr2, retrieval, vqa
from x2vlm_core.tasks.answers import answer_soft_scores, answer_vocabulary
from x2vlm_core.tasks.result import SplitResult

log = logging.getLogger(__name__)


def build_model(pretrained: str | Path, head: str | None = None, answers: list[str] | None = None) -> VLMo:
    """A VLMo from its folder with the task head ``head`` ("vqa", "nlvr2"), kept if the folder has it.

    ``answers``: the VQA answer list, one classifier output each.
    """
    config = read_model_config(pretrained)
    if answers is not None:
        config.vqa_answers, config.vqa_answer_list = len(answers), list(answers)
    model = create_model(config)
    if head is not None:
        model.add_task_head(head)
    missing = init_from(model, pretrained)
    if missing:
        log.info("initialised %d tensors freshly (not in %s), e.g. %s", len(missing), pretrained, missing[:3])
    return model


def check_head(head: str | None):
    def check(model: VLMo, model_dir: str | Path) -> None:
        if head and head not in model.config.task_heads:
            raise ConfigError(
                f"{model_dir} is a VLMo without the {head!r} head; evaluate the model folder "
                f"written by `x2vlm finetune --task {head}`"
            )

    return check


@torch.no_grad()
def evaluate_dual_encoder(
    model: VLMo, samples: list[dict[str, Any]], text: TextEncoder, cfg: retrieval.EvalConfig
) -> SplitResult:
    """Every image against every caption by dual-encoder ITC similarity alone (official)."""
    model.eval()
    samples, texts, txt2img, img2txt = retrieval.caption_index(samples)
    step, res = cfg.batch_size, model.config.image_res
    image_feat = torch.cat(
        [
            model.image_features(model.embed_image(sample_images(samples[i : i + step], res)))[0]
            for i in range(0, len(samples), step)
        ]
    )
    text_ids, text_atts, _ = text(texts)
    text_feat = torch.cat(
        [
            model.text_features(model.embed_text(text_ids[i : i + step]), text_atts[i : i + step])[0]
            for i in range(0, len(texts), step)
        ]
    )
    sims = image_feat @ text_feat.t()
    return retrieval.retrieval_result(sims, sims.t(), samples, texts, txt2img, img2txt)


def build_vqa_model(pretrained: str | Path, shards_root: str | Path, dataset: str = vqa.DATASET) -> VLMo:
    answers = answer_vocabulary(shards_root, dataset, vqa.TRAIN_SPLIT, vqa.ANSWER_LIST_SIZE)
    return build_model(pretrained, "vqa", answers)


def vqa_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: VLMoConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    """The classifier's soft-score targets instead of answer texts."""
    question_ids, question_atts, _ = text([s["meta"]["question"] for s in samples])
    targets = objectives.answer_targets([answer_soft_scores(s["meta"]) for s in samples], config.vqa_answer_list)
    return {
        "image": sample_images(samples, config.image_res),
        "question_ids": question_ids,
        "question_atts": question_atts,
        "answer_targets": targets,
    }


def answer_list_of(model: VLMo) -> list[str]:
    if not model.config.vqa_answer_list:
        raise ConfigError(
            "this VLMo's VQA head names no answers (an official checkpoint's head?); fine-tune it "
            "with `x2vlm finetune --task vqa`, which records the answer list in config.yaml"
        )
    return model.config.vqa_answer_list


def evaluate_vqa(model: VLMo, samples: list[dict[str, Any]], text: TextEncoder, cfg: vqa.EvalConfig) -> SplitResult:
    """The classifier scores the whole answer list (``k_test`` does not apply)."""

    def rank(
        image: torch.Tensor, question_ids: torch.Tensor, question_atts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model.vqa_logits(model.embed_image(image), model.embed_text(question_ids), question_atts)
        probs, top = logits.sigmoid().topk(min(5, logits.shape[1]), dim=1)
        return top, probs

    return vqa.evaluate_answers(model, samples, text, cfg, answer_list_of(model), rank)


def nlvr2_logits(
    model: VLMo, left: torch.Tensor, right: torch.Tensor, text_ids: torch.Tensor, text_atts: torch.Tensor
) -> torch.Tensor:
    return model.nlvr2_logits(left, right, text_ids, text_atts)


TASKS = {
    "retrieval": task_variant(
        retrieval,
        build_model=lambda pretrained, shards_root: build_model(pretrained),
        objective=objectives.retrieval_losses,
        evaluate=evaluate_dual_encoder,
        check_model=check_head(None),
    ),
    "vqa": task_variant(
        vqa,
        build_model=build_vqa_model,
        train_collate=vqa_collate,
        objective=objectives.vqa_losses,
        evaluate=evaluate_vqa,
        answer_list_of=answer_list_of,
        check_model=check_head("vqa"),
    ),
    "nlvr2": task_variant(
        nlvr2,
        build_model=lambda pretrained, shards_root: build_model(pretrained, "nlvr2"),
        objective=functools.partial(nlvr2.pair_objective, nlvr2_logits),
        evaluate=functools.partial(nlvr2.evaluate_pairs, nlvr2_logits),
        check_model=check_head("nlvr2"),
    ),
}

# Why VLMo cannot do the other tasks.
REFUSALS = {
    "grounding": "it has no box head",
    "grounding_weakly": "its image and text meet in shared self-attention, with no cross-attention layer to read a Grad-CAM from",
    "captioning": "it has no generative decoder",
    "video_retrieval": "it takes no video input (no frame position embedding)",
    "video_qa": "it takes no video input (no frame position embedding)",
    "xvnli": "it has no entailment head",
}
