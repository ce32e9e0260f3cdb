"""Each task's headline metric against what a model that learned nothing scores."""

from x2vlm_core.evaluation.headline import headline, headline_table
from x2vlm_core.evaluation.metrics import majority_accuracy


def test_retrieval_is_read_against_chance():
    line = headline("retrieval", {"test_img_r1": 0.25, "test_txt_r1": 0.3, "test_count": 40})
    assert (line.metric, line.baseline, round(line.times_baseline, 2)) == ("test_img_r1", 0.025, 10.0)


def test_classifiers_are_read_against_the_majority_and_grounding_against_one_mean_box():
    assert headline("nlvr2", {"dev_accuracy": 0.6, "dev_majority_accuracy": 0.5}).times_baseline == 1.2
    assert headline("vqa", {"val_accuracy": 0.5, "val_majority_answer_accuracy": 0.25}).times_baseline == 2.0
    grounding = headline("grounding", {"val_acc_iou50": 0.45, "val_mean_box_acc_iou50": 0.15, "testA_acc_iou50": 0.1})
    assert grounding.metric == "val_acc_iou50" and round(grounding.times_baseline, 6) == 3.0
    weakly = headline("grounding_weakly", {"testA_acc_iou50": 0.6, "testA_random_proposal_acc_iou50": 0.2})
    assert (weakly.metric, weakly.baseline_label, round(weakly.times_baseline, 6)) == (
        "testA_acc_iou50",
        "a random proposal",
        3.0,
    )


def test_the_table_has_a_row_per_task_and_says_when_there_is_no_baseline():
    table = headline_table({"captioning": {"test_cider": 0.8}, "retrieval": {"test_img_r1": 0.1, "test_count": 20}})
    rows = table.splitlines()
    assert rows[0].split() == ["task", "metric", "value", "baseline", "×", "baseline"]
    assert rows[1].startswith("captioning") and rows[1].endswith("—")
    assert "0.050 chance (1 / images)" in rows[2] and rows[2].endswith("2.0×")


def test_majority_accuracy_counts_unknown_truths_as_wrong():
    assert majority_accuracy(["a", "a", "b", None]) == 0.5
    assert majority_accuracy([]) == 0.0
