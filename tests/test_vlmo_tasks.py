"""VLMo through the fine-tuning tasks: retrieval, VQA and NLVR2 with its own recipe; the rest refused."""

import json

import pytest
import torch

from x2vlm_core.cli import main
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.shards import iter_shard_samples, list_shards
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.families.vlmo.tasks import TASKS as VLMO_TASKS
from x2vlm_core.release.model_folder import load_model_dir, save_model_dir
from x2vlm_core.tasks import get_task
from x2vlm_core.tasks.answers import answer_soft_scores, answer_vocabulary
from x2vlm_core.train.config import OptimConfig
from x2vlm_core.train.optim import param_groups

FINETUNE_ARGS = [
    "--set",
    "train.steps=4",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.log_every=2",
    "--set",
    "train.shuffle_buffer=16",
    "--set",
    "train.optim.warmup_steps=1",
    "--set",
    "train.optim.lr_mult=5",
]
LR_MULT = 5.0
EXPECTED = {
    "retrieval": ("test", ["txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean"]),
    "vqa": ("val", ["accuracy", "majority_answer_accuracy", "accuracy_yes_no", "accuracy_number"]),
    "nlvr2": ("dev", ["accuracy"]),
}
HEADS = {"retrieval": [], "vqa": ["vqa"], "nlvr2": ["nlvr2"]}
LOSSES = {"retrieval": {"itc"}, "vqa": {"vqa"}, "nlvr2": {"nlvr2"}}
vqa = VLMO_TASKS["vqa"]  # VLMo's own VQA recipe (a classifier over the answer list)
REFUSALS = {
    "grounding": "it has no box head",
    "grounding_weakly": "its image and text meet in shared self-attention",
    "captioning": "it has no generative decoder",
    "video_retrieval": "it takes no video input",
    "video_qa": "it takes no video input",
}


@pytest.fixture(scope="module")
def vlmo_pretrained(tmp_path_factory):
    """A freshly initialised vlmo_tiny model folder, standing in for a pre-trained one."""
    torch.manual_seed(0)
    return save_model_dir(create_model("vlmo_tiny"), tmp_path_factory.mktemp("vlmo_pretrained") / "model")


@pytest.mark.deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_vlmo_finetunes_and_evaluates_through_the_cli(task, vlmo_pretrained, tiny_shards, tmp_path, monkeypatch):
    model_dir, eval_dir = tmp_path / "model", tmp_path / "eval"
    assert (
        main(
            [
                "finetune",
                "--task",
                task,
                "--pretrained",
                str(vlmo_pretrained),
                "--shards",
                str(tiny_shards),
                "--output",
                str(model_dir),
                *FINETUNE_ARGS,
            ]
        )
        == 0
    )
    summary = json.loads((model_dir / "training.json").read_text())
    assert summary["steps"] == 4 and summary["final"]["loss"] == summary["final"]["loss"]  # trained, not NaN
    first = summary["history"][0]
    # VQA / NLVR2 heads train at lr * lr_mult; retrieval adds no head, so every group has the base lr.
    assert first["lr"] > 0
    assert first["lr_new_heads"] == pytest.approx(first["lr"] * (LR_MULT if HEADS[task] else 1.0))
    assert set(first) & {"itc", "itm", "mlm", "vqa", "nlvr2"} == LOSSES[task]
    if task == "retrieval":  # ITC of the dual encoder only, in training and in evaluation
        monkeypatch.setattr(VLMo, "itm_logits", lambda *args: pytest.fail("VLMo retrieval must not use ITM"))

    assert (
        main(
            [
                "evaluate",
                "--task",
                task,
                "--model",
                str(model_dir),
                "--shards",
                str(tiny_shards),
                "--output",
                str(eval_dir),
            ]
        )
        == 0
    )
    written = json.loads((eval_dir / "metrics.json").read_text())
    split, names = EXPECTED[task]
    assert written["task"] == task
    for name in names:
        assert 0.0 <= written["metrics"][f"{split}_{name}"] <= 1.0, name
    rows = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    assert sum(row["split"] == split for row in rows) >= written["metrics"][f"{split}_count"] > 0
    assert f"<h2>{split}</h2>" in (eval_dir / "report.html").read_text()

    # The task model folder reloads as a VLMo with its head, ready for evaluate or publish.
    model = load_model_dir(model_dir)
    assert isinstance(model, VLMo) and model.config.task_heads == HEADS[task]
    if task == "vqa":
        answers = answer_vocabulary(tiny_shards, "vqa", "train", vqa.ANSWER_LIST_SIZE)
        assert model.config.vqa_answer_list == answers
        assert model.vqa_classifier[-1].out_features == len(answers)
        scored = [row for row in rows if row["split"] == "val"]
        assert all(row["answer"] in answers and row["answer"] == row["top5"][0][0] for row in scored)
        results = json.loads((eval_dir / "results_val.json").read_text())
        assert len(results) == len(scored) and {"question_id", "answer"} <= set(results[0])
    if task == "nlvr2":
        assert model.token_type_embeddings.num_embeddings == 3  # the second image's token type
        assert {row["predicted"] for row in rows} <= {True, False}


def test_vqa_head_gets_the_head_learning_rate(vlmo_pretrained, tiny_shards):
    model = vqa.build_model(vlmo_pretrained, tiny_shards)
    cfg = OptimConfig(lr=1e-4, lr_mult=3.0)
    head = {id(p) for name, p in model.named_parameters() if name.startswith("vqa_classifier.")}
    groups = param_groups(model, cfg, tuple(model.new_head_prefixes))
    for group in groups:
        in_head = [id(p) in head for p in group["params"]]
        assert all(in_head) or not any(in_head)
        assert group["lr"] == pytest.approx(3e-4 if in_head[0] else 1e-4)
    assert sum(len(g["params"]) for g in groups if g["lr"] > 1e-4) == len(head) > 0


def test_vqa_targets_are_the_soft_scores_over_the_answer_list(vlmo_pretrained, tiny_shards):
    model = vqa.build_model(vlmo_pretrained, tiny_shards)
    answers = model.config.vqa_answer_list
    meta = {
        "question": "what color is the circle?",
        "answers": ["red"] * 5 + ["Red"] + ["blue"] * 2 + ["green"] + ["zebra stripes"],
    }
    assert answer_soft_scores(meta) == {"red": 1.0, "blue": 0.6, "green": 0.3, "zebra stripes": 0.3}
    sample = {**next(iter(iter_shard_samples(list_shards(str(tiny_shards), "vqa", "train")))), "meta": meta}
    text = TextEncoder(model.config.tokenizer, model.config.max_tokens)
    batch = vqa.train_collate([sample], text, model.config, rng=None)
    targets = batch["answer_targets"][0]
    assert targets.shape == (len(answers),) and "answer_ids" not in batch
    expected = {a: s for a, s in answer_soft_scores(meta).items() if a in answers}
    assert {answers[i]: round(float(v), 4) for i, v in enumerate(targets) if v > 0} == expected


@pytest.mark.parametrize("task", sorted(REFUSALS))
def test_other_tasks_refuse_vlmo_before_any_work(task, vlmo_pretrained, tiny_shards, tmp_path, capsys):
    assert (
        main(
            [
                "finetune",
                "--task",
                task,
                "--pretrained",
                str(vlmo_pretrained),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "model"),
                *FINETUNE_ARGS,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"VLMo cannot do {task}: {REFUSALS[task]}" in err
    assert "retrieval, vqa, nlvr2" in err and not (tmp_path / "model").exists()
    with pytest.raises(ConfigError, match="VLMo cannot do .*retrieval, vqa, nlvr2"):
        get_task(task).check_model(load_model_dir(vlmo_pretrained), vlmo_pretrained)


def test_vqa_evaluation_needs_a_vlmo_with_the_vqa_head(vlmo_pretrained):
    with pytest.raises(ConfigError, match=r"VLMo without the 'vqa' head; .*x2vlm finetune --task vqa"):
        vqa.check_model(load_model_dir(vlmo_pretrained), vlmo_pretrained)
