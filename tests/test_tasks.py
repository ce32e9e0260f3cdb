"""Every fine-tuning task end to end through the CLI, and the task parts worth checking on their own."""

import json
import random

import pytest
import torch

from x2vlm_core.cli import TASK_NAMES, main
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.families import create_model
from x2vlm_core.models.answer_decoder import AnswerDecoder
from x2vlm_core.models.beam_search import beam_search, repeated_ngram_tokens
from x2vlm_core.models.task_heads import TASK_HEADS_FILE, TaskHeads, attach_task_heads
from x2vlm_core.release.model_folder import load_model_dir, save_model_dir
from x2vlm_core.tasks import TASKS, captioning, vqa
from x2vlm_core.tasks.retrieval import UNSCORED, rerank_top_k

FINETUNE_ARGS = [
    "--set",
    "train.steps=6",
    "--set",
    "train.batch_size=8",
    "--set",
    "train.log_every=3",
    "--set",
    "train.shuffle_buffer=16",
    "--set",
    "train.optim.warmup_steps=1",
]
# Small enough for a few seconds per task; each still exercises the real evaluation path.
EVAL_OPTIONS = {
    "retrieval": ["k_test=8", "itm_batch_size=20"],
    "video_retrieval": ["k_test=2"],
    "vqa": ["k_test=4"],
    "captioning": ["max_length=8", "min_length=2", "meteor=false"],
}
# The split each task's metrics are checked on, and the metrics it must report (fractions; CIDEr up to 10).
EXPECTED = {
    "retrieval": ("test", ["txt_r1", "txt_r5", "txt_r10", "img_r1", "img_r5", "img_r10", "r_mean"]),
    "grounding": ("val", ["acc_iou50"]),
    "grounding_weakly": ("val", ["acc_iou50", "random_proposal_acc_iou50", "proposal_recall_iou50"]),
    "vqa": ("val", ["accuracy", "majority_answer_accuracy", "accuracy_yes_no", "accuracy_number"]),
    "nlvr2": ("dev", ["accuracy"]),
    "captioning": ("test", ["bleu4", "rouge_l", "cider"]),
    "video_retrieval": ("test", ["t2v_r1", "t2v_r5", "t2v_r10", "t2v_r_mean"]),
    "video_qa": ("test", ["accuracy"]),
    "xvnli": ("dev", ["accuracy"]),
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A freshly initialised x2vlm_tiny model folder, standing in for a pre-trained one."""
    torch.manual_seed(0)
    return save_model_dir(create_model("x2vlm_tiny"), tmp_path_factory.mktemp("pretrained") / "model")


def test_every_task_is_on_the_command_line():
    assert set(TASK_NAMES) == set(TASKS) == set(EXPECTED)


@pytest.mark.deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_finetune_then_evaluate_through_the_cli(task, pretrained, tiny_shards, tmp_path, capsys):
    model_dir, eval_dir = tmp_path / "model", tmp_path / "eval"
    assert (
        main(
            [
                "finetune",
                "--task",
                task,
                "--pretrained",
                str(pretrained),
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
    assert summary["steps"] == 6 and summary["final"]["loss"] == summary["final"]["loss"]  # trained, not NaN
    options = [arg for option in EVAL_OPTIONS.get(task, []) for arg in ("--set", option)]
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
                *options,
            ]
        )
        == 0
    )

    written = json.loads((eval_dir / "metrics.json").read_text())
    assert written["task"] == task
    split, names = EXPECTED[task]
    for name in names:
        assert 0.0 <= written["metrics"][f"{split}_{name}"] <= (10.0 if name == "cider" else 1.0), name
    rows = [json.loads(line) for line in (eval_dir / "predictions.jsonl").read_text().splitlines()]
    assert {row["split"] for row in rows} >= {split}
    assert sum(row["split"] == split for row in rows) >= written["metrics"][f"{split}_count"]
    report = (eval_dir / "report.html").read_text()
    assert f"<h2>{split}</h2>" in report and report.count("data:image/jpeg;base64,") >= 2

    # The task model folder loads back with its heads, ready for evaluate or publish.
    model = load_model_dir(model_dir)
    heads = getattr(model, "task_heads", None)
    if task in ("vqa", "nlvr2", "video_qa", "xvnli"):
        assert heads.task == task and (model_dir / TASK_HEADS_FILE).is_file()
    else:
        assert heads is None
    if task.startswith("video"):
        assert model.config.frame_len == 3
    if task == "vqa":
        results = json.loads((eval_dir / "results_val.json").read_text())
        assert [r["question_id"] for r in results] == [r["question_id"] for r in rows]
        assert all(r["answer"] in heads.labels for r in results)
    if task == "captioning":
        assert all(isinstance(r["caption"], str) and r["references"] for r in rows)
        assert (
            "meteor" in written["unavailable"]["test_meteor"] or "turned off" in written["unavailable"]["test_meteor"]
        )


def test_evaluate_refuses_a_model_without_the_task_heads(pretrained, tiny_shards, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--task",
                "vqa",
                "--model",
                str(pretrained),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "has no task heads, not the 'vqa' heads" in err and "\n" not in err
    assert (
        main(
            [
                "evaluate",
                "--task",
                "retrieval",
                "--model",
                str(pretrained),
                "--shards",
                str(tiny_shards),
                "--output",
                str(tmp_path / "e"),
                "--set",
                "top_k=3",
            ]
        )
        == 2
    )
    assert "unknown key(s) ['top_k'] in retrieval evaluation options; valid keys are:" in capsys.readouterr().err


def test_answer_decoder_starts_as_the_fusion_layers(pretrained, tiny_shards):
    model = vqa.build_model(pretrained, tiny_shards)
    encoder, decoder = model.text_encoder, model.text_decoder
    fusion = encoder.bert.encoder.layer[encoder.bert.fusion_start_at :]
    assert len(decoder.bert.encoder.layer) == len(fusion)
    for source, target in zip(fusion, decoder.bert.encoder.layer):
        for name, value in source.state_dict().items():
            torch.testing.assert_close(target.state_dict()[name], value)
    torch.testing.assert_close(
        decoder.bert.embeddings.word_embeddings.weight, encoder.bert.embeddings.word_embeddings.weight
    )
    torch.testing.assert_close(
        decoder.cls.predictions.transform.dense.weight, encoder.cls.predictions.transform.dense.weight
    )
    assert decoder.cls.predictions.decoder.weight is decoder.bert.embeddings.word_embeddings.weight
    assert decoder.bert.embeddings.word_embeddings.weight is not encoder.bert.embeddings.word_embeddings.weight
    assert model.task_heads.labels[0] == "yes"  # the most frequent shapes-world answer comes first

    # With half as many decoder layers, the odd fusion layers are used (as the official loader does).
    half = AnswerDecoder(model.config.text, len(fusion) // 2)
    half.init_from_fusion_layers(encoder)
    torch.testing.assert_close(half.bert.encoder.layer[0].output.dense.weight, fusion[1].output.dense.weight)


def test_answer_decoder_is_causal():
    decoder = AnswerDecoder(create_model("x2vlm_tiny").config.text, 1).eval()
    ids = torch.tensor([[101, 2417, 2003, 102]])
    states, state_atts = torch.randn(1, 5, decoder.bert.embeddings.word_embeddings.embedding_dim), torch.ones(1, 5)
    full = decoder.logits(ids, torch.ones_like(ids), states, state_atts.long())
    prefix = decoder.logits(ids[:, :2], torch.ones(1, 2, dtype=torch.long), states, state_atts.long())
    torch.testing.assert_close(full[:, :2], prefix)  # later tokens never change earlier predictions


def test_video_frames_are_sampled_per_segment():
    from x2vlm_core.tasks.frames import frame_indices

    rng = random.Random(0)
    # 8 frames in 3 segments of 3, 3 and 2 frames: evaluation takes each segment's first frame.
    assert frame_indices(8, 3, training=False, rng=rng) == [0, 3, 6]
    assert frame_indices(2, 3, training=False, rng=rng) == [0, 0, 1]  # too few frames: repeated
    for _ in range(20):
        picked = frame_indices(8, 3, training=True, rng=rng)
        assert len(picked) == 3 and picked == sorted(picked) and len(set(picked)) == 3 and max(picked) < 8


def test_task_heads_round_trip_through_a_model_folder(tmp_path):
    model = attach_task_heads(create_model("x2vlm_tiny"), TaskHeads(task="video_qa", cls_inputs=1, labels=["a", "b"]))
    folder = save_model_dir(model, tmp_path / "m")
    loaded = load_model_dir(folder)
    assert loaded.task_heads == model.task_heads
    torch.testing.assert_close(loaded.cls_head[3].weight, model.cls_head[3].weight)


def test_rerank_scores_each_querys_top_k_whatever_the_batch_size():
    sims = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.1], [0.0, 0.1, 0.2, 0.3]])
    calls = []

    def pair_scores(queries, candidates):
        calls.append(len(queries))
        return (10 * queries + candidates).float()

    scores = rerank_top_k(sims, 2, pair_scores, batch_size=4)
    expected = torch.full_like(sims, UNSCORED)
    for q, c in [(0, 0), (0, 2), (1, 1), (1, 2), (2, 3), (2, 2)]:
        expected[q, c] = 10 * q + c
    torch.testing.assert_close(scores, expected)
    assert calls == [4, 2]  # 6 pairs in batches of 4, across query boundaries
    torch.testing.assert_close(rerank_top_k(sims, 2, pair_scores, batch_size=1), expected)


def _toy_model(table: dict[int, list[float]]):
    """Next-token log-probabilities that depend only on the last token (vocabulary: 0 = end, 1, 2).

    Rows of beams that already ended are still computed (then ignored): they read the end row.
    """
    table = {0: [1 / 3] * 3, **table}

    def next_log_probs(owner, tokens):
        return torch.tensor([table[int(t)] for t in tokens[:, -1]]).log()

    return next_log_probs


def test_beam_search_keeps_the_best_finished_caption():
    # After the prompt (token 9): "1" (0.6) or "2" (0.4). After "1" the end is unlikely (0.3);
    # after "2" it is likely (0.9). "2 <end>" (0.36) beats "1 <end>" (0.18) and any longer "1 ..."
    # (at most 0.6 * 0.4 * 0.3), and greedy search would not find it.
    table = {9: [0.0, 0.6, 0.4], 1: [0.3, 0.4, 0.3], 2: [0.9, 0.05, 0.05]}
    assert beam_search(_toy_model(table), 1, [9], end_id=0, num_beams=2, min_length=1, max_length=6) == [[2]]
    assert beam_search(_toy_model(table), 1, [9], end_id=0, num_beams=1, min_length=1, max_length=3) == [[1, 1, 1]]


def test_beam_search_respects_min_length_and_no_repeated_trigram():
    always_end = {9: [0.9, 0.05, 0.05], 1: [0.9, 0.05, 0.05], 2: [0.9, 0.05, 0.05]}
    assert [
        len(s) for s in beam_search(_toy_model(always_end), 2, [9], end_id=0, num_beams=3, min_length=3, max_length=10)
    ] == [3, 3]
    # A model that always prefers "1", then "2", never ends: "1 1 1" may not repeat, so "2" comes in.
    no_end = {t: [1e-9, 0.7, 0.3] for t in (9, 1, 2)}
    assert beam_search(_toy_model(no_end), 1, [9], end_id=0, num_beams=1, min_length=0, max_length=6) == [
        [1, 1, 1, 2, 1, 1]
    ]
    assert repeated_ngram_tokens([5, 6, 7, 5, 6], 3) == [7]


def test_caption_batch_predicts_each_masked_token_from_real_tokens_only(pretrained):
    import io

    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(jpeg, format="JPEG")
    text = TextEncoder(str(pretrained / "tokenizer"), 24)
    samples = [
        {"key": "k", "meta": {"captions": ["a red circle and a blue square at the top"]}, "images": [jpeg.getvalue()]},
        {"key": "j", "meta": {"captions": ["one green triangle"]}, "images": [jpeg.getvalue()]},
    ]
    batch = captioning.train_collate(samples, text, create_model("x2vlm_tiny").config, random.Random(0))
    prompt = 1 + len(text.tokenizer.tokenize(captioning.PROMPT))
    mask_id = text.tokenizer.mask_token_id
    for row in range(2):
        ids, positions, keep = batch["text_ids"][row], batch["position_ids"][row], batch["keep"][row]
        slots = [int(p) for p, t in zip(batch["masked_pos"][row], batch["masked_ids"][row]) if t != -100]
        assert slots and all(ids[s] == mask_id for s in slots)
        for slot, target in zip(slots, batch["masked_ids"][row]):
            # The [MASK] stands just before the token it predicts, at that token's position, after the prompt.
            assert ids[slot + 1] == target and positions[slot + 1] == positions[slot] >= prompt
            # Only the [MASK] itself reads it, and it reads nothing after itself.
            assert keep[:, slot].nonzero().flatten().tolist() == [slot]
            assert not keep[slot, slot + 1 :].any()
        assert (ids == mask_id).sum() == len(slots)


@pytest.mark.deepspeed
@pytest.mark.slow
def test_evaluate_component_writes_metrics_and_an_html_report(pretrained, tiny_shards, tmp_path):
    from kfp.dsl import HTML, Artifact, Dataset, Metrics, Model

    from components.evaluate import evaluate

    model_dir = tmp_path / "grounding"
    assert (
        main(
            [
                "finetune",
                "--task",
                "grounding",
                "--pretrained",
                str(pretrained),
                "--shards",
                str(tiny_shards),
                "--output",
                str(model_dir),
                "--set",
                "train.steps=1",
                "--set",
                "train.batch_size=4",
            ]
        )
        == 0
    )
    metrics, report = Metrics(uri=str(tmp_path / "metrics")), HTML(uri=str(tmp_path / "report"))
    predictions = Artifact(uri=str(tmp_path / "predictions"))
    evaluate.python_func(
        task="grounding",
        shards=Dataset(uri=str(tiny_shards)),
        model=Model(uri=str(model_dir)),
        metrics=metrics,
        report=report,
        predictions=predictions,
        options=["batch_size=4"],
    )
    written = json.loads((tmp_path / "metrics").read_text())
    assert written["task"] == "grounding" and "val_acc_iou50" in written["metrics"]
    assert metrics.metadata["val_acc_iou50"] == written["metrics"]["val_acc_iou50"]
    page = (tmp_path / "report").read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "data:image/jpeg;base64," in page
        and report.metadata["task"] == "grounding"
    )
