"""Every task metric against cases worked out by hand."""

import numpy as np
import pytest
import torch

from x2vlm_core.evaluation import caption_metrics
from x2vlm_core.evaluation.metrics import accuracy, grounding_accuracy, retrieval_recall
from x2vlm_core.evaluation.vqa_accuracy import (
    evalai_results,
    mean_vqa_accuracy,
    normalize_answer,
    process_punctuation,
    vqa_accuracy,
)


def _scores_with_ranks(rank_of: list[list[int]]) -> np.ndarray:
    """A score matrix whose row ``q`` ranks candidate ``c`` at position ``rank_of[q][c]`` (0 = best)."""
    return -np.asarray(rank_of, dtype=float)


def test_retrieval_recall_on_a_constructed_score_matrix():
    # 4 images with 2 captions each: image i owns texts 2i and 2i+1.
    img2txt = [[0, 1], [2, 3], [4, 5], [6, 7]]
    txt2img = [0, 0, 1, 1, 2, 2, 3, 3]
    # Image queries: the best-ranked own caption sits at 0, 6, 2 and 1.
    scores_i2t = _scores_with_ranks(
        [
            [0, 1, 2, 3, 4, 5, 6, 7],
            [0, 1, 6, 7, 2, 3, 4, 5],
            [0, 1, 3, 4, 2, 5, 6, 7],
            [0, 2, 3, 4, 5, 6, 7, 1],
        ]
    )
    # Text queries: their image sits at 0, 1, 3, 0, 2, 0, 1, 3.
    true_rank = [0, 1, 3, 0, 2, 0, 1, 3]
    rank_of = []
    for t, image in enumerate(txt2img):
        others = [i for i in range(4) if i != image]
        order = others[: true_rank[t]] + [image] + others[true_rank[t] :]
        rank_of.append([order.index(i) for i in range(4)])
    metrics = retrieval_recall(scores_i2t, _scores_with_ranks(rank_of), txt2img, img2txt)

    assert (metrics["txt_r1"], metrics["txt_r5"], metrics["txt_r10"]) == (0.25, 0.75, 1.0)
    assert (metrics["img_r1"], metrics["img_r5"], metrics["img_r10"]) == (3 / 8, 1.0, 1.0)
    assert metrics["txt_r_mean"] == pytest.approx((0.25 + 0.75 + 1.0) / 3)
    assert metrics["img_r_mean"] == pytest.approx((3 / 8 + 1 + 1) / 3)
    assert metrics["r_mean"] == pytest.approx((metrics["txt_r_mean"] + metrics["img_r_mean"]) / 2)


def test_retrieval_ties_rank_the_later_candidate_first_as_the_official_itm_eval():
    # Text 0 (of image 0) scores images 0 and 1 the same: the reversed ascending sort puts image 1 first.
    scores_t2i = np.array([[0.5, 0.5], [0.0, 1.0]])
    metrics = retrieval_recall(np.eye(2), scores_t2i, [0, 1], [[0], [1]])
    assert metrics["img_r1"] == 0.5 and metrics["img_r5"] == 1.0


def test_grounding_accuracy_counts_iou_of_one_half_as_a_hit():
    truth = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]])
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)  # IoU 1, 50/150 = 1/3, 100/200 = 1/2
    assert grounding_accuracy(pred, truth) == pytest.approx(2 / 3)


def test_accuracy_counts_an_unknown_truth_as_wrong():
    assert accuracy([True, False, True], [True, True, True]) == pytest.approx(2 / 3)
    assert accuracy(["red", "2"], [None, "2"]) == 0.5
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])


def test_vqa_accuracy_worked_example():
    # Ten annotators: "2", "2", "two" and seven "3". The prediction "Two" normalises to "2" and matches
    # two annotators (the human "two" stays "two": the official tool maps number words in the
    # prediction only). Leaving out one of the two "2"s leaves 1 match, score 1/3 (2 of the 10 sets);
    # leaving out anyone else leaves 2 matches, score 2/3 (8 sets): (2 * 1/3 + 8 * 2/3) / 10 = 0.6.
    humans = ["2", "2", "two"] + ["3"] * 7
    assert vqa_accuracy("Two", humans) == pytest.approx(0.6)
    assert vqa_accuracy("3", humans) == pytest.approx(1.0)  # 6 or 7 matches: full credit in every set
    assert vqa_accuracy("4", humans) == 0.0
    # GQA-style questions have one answer: exact match after the same normalisation.
    assert vqa_accuracy("A Red.", ["red"]) == 1.0 and vqa_accuracy("blue", ["red"]) == 0.0
    # 3 of 10 say "yes": leaving a "yes" out leaves 2 matches (2/3), leaving a "no" out leaves 3 (1).
    assert vqa_accuracy("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    # The prediction is normalised: case, punctuation, articles.
    assert vqa_accuracy("Yes!", ["yes"] * 10) == 1.0
    assert vqa_accuracy("The dog.", ["dog"] * 4 + ["cat"] * 6) == 1.0
    assert mean_vqa_accuracy(["Two", "yes"], [humans, ["no"] * 10]) == pytest.approx(0.3)


def test_vqa_answer_normalisation_follows_the_official_rules():
    assert process_punctuation("hot-dog") == "hot dog"  # a mark inside a word becomes a space
    assert process_punctuation("yes , it is") == "yes  it is"  # next to a space it is deleted
    assert process_punctuation("3,000") == "3000"  # digit,digit anywhere: marks deleted
    assert process_punctuation("mr. smith") == "mr smith"  # a period not before a digit goes
    assert process_punctuation("2.5") == "2.5"
    assert normalize_answer(" The  Dogs dont\tbark ") == "dogs don't bark"
    assert normalize_answer("none") == "0"


def test_evalai_results_format():
    assert evalai_results([7, 8], ["yes", "2"]) == [
        {"question_id": 7, "answer": "yes"},
        {"question_id": 8, "answer": "2"},
    ]


REFERENCES = {1: ["A red circle on the left."], 2: ["two blue squares near green triangles"]}


@pytest.mark.slow
@pytest.mark.skipif(not caption_metrics.java_available(), reason="the PTB tokenizer and METEOR need Java")
def test_caption_scores_of_perfect_and_unrelated_captions():
    # Identical captions: BLEU-4, ROUGE-L and METEOR are 1; CIDEr-D is 10 (cosine 1 at every n-gram
    # order, no length penalty, times 10) since no n-gram appears in both images' references.
    perfect, unavailable = caption_metrics.caption_scores(
        REFERENCES, {1: "a red circle on the left", 2: "two blue squares near green triangles"}
    )
    assert unavailable == {}
    assert perfect["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["rouge_l"] == pytest.approx(1.0)
    assert perfect["cider"] == pytest.approx(10.0)
    assert perfect["meteor"] == pytest.approx(1.0)
    unrelated, unavailable = caption_metrics.caption_scores(
        REFERENCES, {1: "zebra", 2: "purple elephants dancing"}, meteor=False
    )
    assert unrelated["bleu4"] < 1e-6 and unrelated["rouge_l"] == 0.0 and unrelated["cider"] == 0.0
    assert "turned off" in unavailable["meteor"]


def test_caption_scores_without_java_name_what_is_missing(monkeypatch):
    monkeypatch.setattr(caption_metrics, "java_available", lambda: False)
    scores, unavailable = caption_metrics.caption_scores(
        REFERENCES, {1: "a red circle on the left", 2: "two blue squares near green triangles"}, spice=True
    )
    assert scores["cider"] == pytest.approx(10.0) and scores["rouge_l"] == pytest.approx(1.0)
    assert "meteor" not in scores and "spice" not in scores
    assert set(unavailable) == {"tokenizer", "meteor", "spice"}
    assert all("java" in reason for reason in unavailable.values())


def test_python_tokenizer_matches_the_ptb_tokenizer_on_caption_text(monkeypatch):
    if not caption_metrics.java_available():
        pytest.skip("needs Java for the reference tokenization")
    captions = {1: ["A man, riding a bike's wheel... (fast)! He doesn't stop."], 2: ["Two DOGS; one cat."]}
    official = caption_metrics.ptb_tokenize(captions)
    monkeypatch.setattr(caption_metrics, "java_available", lambda: False)
    assert caption_metrics.ptb_tokenize(captions) == official
