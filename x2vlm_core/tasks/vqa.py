"""VQA v2: a generative answer decoder over the fused question, ranking an answer list at test time.

Training: the question is fused with the image by the text + fusion layers; the decoder
(initialised from the fusion layers) learns every distinct human answer of the question, each
weighted by the share of annotators who gave it; the loss is the weighted answer NLL summed over
answers and divided by the batch size (official). Evaluation: the first-token probabilities
pick the ``k_test`` most likely answers of the list (128), whose full sequences are re-scored;
the best one is the prediction, scored with the official VQA accuracy. Every evaluated split
also gets an EvalAI results file, which is what test-dev / test-std submissions need.

A family may replace the answer model (VLMo: a classifier, ``families/vlmo/tasks.py``); the
prediction is then scored and written as above (``evaluate_answers``).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from x2vlm_core.data.collate import TextEncoder, sample_images
from x2vlm_core.evaluation import report
from x2vlm_core.evaluation.vqa_accuracy import evalai_results, vqa_accuracy
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.models.protocols import AnswerDecoderModel, FusionModel, TaskModel
from x2vlm_core.models.task_heads import TaskHeads, required_task_heads
from x2vlm_core.release.model_folder import read_model_config
from x2vlm_core.tasks.answers import answer_vocabulary, answer_weights
from x2vlm_core.tasks.result import SplitResult
from x2vlm_core.tasks.task_model import build_task_model, model_check

DATASET = "vqa"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("val", "test-dev", "test")
ANSWER_LIST_SIZE = 3128  # the official answer list's length
report_section = report.vqa_section
# (images, question ids, question mask) -> the best answers' indices [Q, k] and their scores.
AnswerRanker = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
check_model = model_check("vqa", "vqa")


@dataclass
class EvalConfig:
    k_test: int = 128  # answers re-scored per question (official)
    batch_size: int = 32  # questions per forward pass


def build_model(pretrained: str | Path, shards_root: str | Path, dataset: str = DATASET) -> AnswerDecoderModel:
    """Backbone + an answer decoder with as many layers as there are fusion layers (official 6 of 6).

    The answer list is ``dataset``'s most frequent training answers (e.g. ``xgqa`` for xGQA).
    """
    answers = answer_vocabulary(shards_root, dataset, TRAIN_SPLIT, ANSWER_LIST_SIZE)
    text = read_model_config(pretrained).text
    heads = TaskHeads(task="vqa", decoder_layers=text.num_layers - text.fusion_start_at, labels=answers)
    model, missing = build_task_model(pretrained, heads)
    if any(name.startswith("text_decoder.") for name in missing):
        model.init_answer_decoder(model.text_decoder)  # from the layers that fuse text with the image
    return model


def train_collate(
    samples: list[dict[str, Any]], text: TextEncoder, config: ModelConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
    question_ids, question_atts, _ = text([s["meta"]["question"] for s in samples])
    answers: list[str] = []
    weights: list[float] = []
    counts: list[int] = []
    for sample in samples:
        shares = answer_weights(sample["meta"])
        answers.extend(shares)
        weights.extend(shares.values())
        counts.append(len(shares))
    answer_ids, answer_atts, _ = text(answers)
    return {
        "image": sample_images(samples, config.image_res),
        "question_ids": question_ids,
        "question_atts": question_atts,
        "answer_ids": answer_ids,
        "answer_atts": answer_atts,
        "answer_weights": torch.tensor(weights, dtype=torch.float32),
        "answers_per_question": torch.tensor(counts, dtype=torch.long),
    }


def fused_questions(
    model: FusionModel, image: torch.Tensor, question_ids: torch.Tensor, question_atts: torch.Tensor
) -> torch.Tensor:
    image_embeds, image_atts = model.get_vision_embeds(image)
    return model.get_cross_embeds(
        image_embeds, image_atts, model.get_text_embeds(question_ids, question_atts), question_atts
    )


def objective(model: AnswerDecoderModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    states = fused_questions(model, batch["image"], batch["question_ids"], batch["question_atts"])
    repeats = batch["answers_per_question"]
    nll = model.text_decoder.answer_nll(
        batch["answer_ids"],
        batch["answer_atts"],
        states.repeat_interleave(repeats, dim=0),
        batch["question_atts"].repeat_interleave(repeats, dim=0),
    )
    return {"vqa": (batch["answer_weights"] * nll).sum() / batch["image"].shape[0]}


def rank_answers(
    model: AnswerDecoderModel,
    states: torch.Tensor,
    question_atts: torch.Tensor,
    answer_ids: torch.Tensor,
    answer_atts: torch.Tensor,
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the answer list ``[Q, k]``, best first, with their probabilities among those k."""
    decoder = model.text_decoder
    start = answer_ids[:1, :1].expand(states.shape[0], 1)  # every answer starts with [CLS]
    first = decoder.logits(start, torch.ones_like(start), states, question_atts)[:, 0].softmax(dim=-1)
    first_token_prob, top = first[:, answer_ids[:, 1]].topk(k, dim=1)
    ids, atts = answer_ids[top.flatten()], answer_atts[top.flatten()]
    nll = decoder.answer_nll(
        ids, atts, states.repeat_interleave(k, dim=0), question_atts.repeat_interleave(k, dim=0)
    ).view(-1, k)
    # As the official ranking: the first token's log-probability is counted by both stages.
    scores = (first_token_prob.log() - nll).softmax(dim=1)
    probs, order = scores.sort(dim=1, descending=True)
    return top.gather(1, order), probs


def answer_list_of(model: object) -> list[str]:
    """The answers a VQA task model chooses from, in its head's order."""
    return required_task_heads(model).labels


def decoder_ranker(model: AnswerDecoderModel, text: TextEncoder, answer_list: list[str], k_test: int) -> AnswerRanker:
    """Ranks with the answer decoder: the ``k_test`` likeliest first tokens, their full answers re-scored."""
    answer_ids, answer_atts, _ = text(answer_list)
    k = min(k_test, len(answer_list))

    def rank(
        images: torch.Tensor, question_ids: torch.Tensor, question_atts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = fused_questions(model, images, question_ids, question_atts)
        return rank_answers(model, states, question_atts, answer_ids, answer_atts, k)

    return rank


@torch.no_grad()
def evaluate(
    model: AnswerDecoderModel, samples: list[dict[str, Any]], text: TextEncoder, cfg: EvalConfig
) -> SplitResult:
    answer_list = answer_list_of(model)
    return evaluate_answers(
        model, samples, text, cfg, answer_list, decoder_ranker(model, text, answer_list, cfg.k_test)
    )


@torch.no_grad()
def evaluate_answers(
    model: TaskModel,
    samples: list[dict[str, Any]],
    text: TextEncoder,
    cfg: EvalConfig,
    answer_list: list[str],
    rank: AnswerRanker,
) -> SplitResult:
    """Predict each question's answer with ``rank`` (indices into ``answer_list``, best first, with scores)."""
    model.eval()
    predictions = []
    for start in range(0, len(samples), cfg.batch_size):
        chunk = samples[start : start + cfg.batch_size]
        question_ids, question_atts, _ = text([s["meta"]["question"] for s in chunk])
        ranked, probs = rank(sample_images(chunk, model.config.image_res), question_ids, question_atts)
        for sample, order, prob in zip(chunk, ranked.tolist(), probs.tolist()):
            meta = sample["meta"]
            row = {
                "key": sample["key"],
                "question_id": meta.get("question_id"),
                "question": meta["question"],
                "answer": answer_list[order[0]],
                "top5": [[answer_list[i], round(p, 4)] for i, p in zip(order[:5], prob[:5])],
            }
            if meta.get("answers"):
                row["human_answers"] = meta["answers"]
                row["accuracy"] = vqa_accuracy(row["answer"], meta["answers"])
            predictions.append(row)
    return SplitResult(_metrics(predictions, samples, answer_list[0]), predictions)


def _metrics(predictions: list[dict[str, Any]], samples: list[dict[str, Any]], majority: str) -> dict[str, float]:
    """Overall and per answer type accuracy, and what always answering the most frequent training answer scores."""
    scored = [(row, s["meta"]) for row, s in zip(predictions, samples) if "accuracy" in row]
    if not scored:  # test-dev / test-std: no human answers, the EvalAI file is the result
        return {}
    by_type: dict[str, list[float]] = defaultdict(list)
    for row, meta in scored:
        by_type[meta.get("answer_type", "all")].append(row["accuracy"])
    metrics = {
        "accuracy": sum(row["accuracy"] for row, _ in scored) / len(scored),
        "majority_answer_accuracy": sum(vqa_accuracy(majority, m["answers"]) for _, m in scored) / len(scored),
    }
    for answer_type, values in sorted(by_type.items()):
        metrics[f"accuracy_{answer_type.replace('/', '_')}"] = sum(values) / len(values)
    return metrics


def submission(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The EvalAI results JSON of one split."""
    return evalai_results([row["question_id"] for row in predictions], [row["answer"] for row in predictions])
