"""boxes without Beam: a box is cut to its image, or dropped (degenerate, mostly outside), and counted."""

from __future__ import annotations

from x2vlm_core.dataprep.boxes import CLIPPED, DEGENERATE, MOSTLY_OUTSIDE, NO_USABLE_BOX, fit_box, fit_record_boxes


def test_a_box_inside_is_kept_one_over_the_edge_clipped_and_the_rest_dropped():
    assert fit_box([10, 10, 20, 20], 120, 90) == ([10.0, 10.0, 20.0, 20.0], None)
    assert fit_box([100, 80, 30, 12], 120, 90) == ([100.0, 80.0, 20.0, 10.0], CLIPPED)  # 200 of 360 px inside
    assert fit_box([-5, 70, 40, 30], 120, 90) == ([0.0, 70.0, 35.0, 20.0], CLIPPED)  # 700 of 1200 px inside
    assert fit_box([60, 60, 60, 60], 120, 90) == ([60.0, 60.0, 60.0, 30.0], CLIPPED)  # exactly half inside: kept
    assert fit_box([60, 61, 60, 60], 120, 90) == (None, MOSTLY_OUTSIDE)  # 1740 of 3600 px
    assert fit_box([0, 0, 500, 500], 120, 90) == (None, MOSTLY_OUTSIDE)  # the Visual Genome region of the trial
    assert fit_box([200, 10, 20, 20], 120, 90) == (None, MOSTLY_OUTSIDE)
    assert fit_box([10, 10, 0, 20], 120, 90) == (None, DEGENERATE)
    assert fit_box([10, 10, -4, 20], 120, 90) == (None, DEGENERATE)
    assert fit_box([119.2, 10, 1.5, 80], 120, 90) == (None, DEGENERATE)  # most of it inside, but 0.8 px wide


def test_a_region_record_keeps_its_fitted_regions_and_a_grounding_record_is_rejected_without_its_box():
    record = {
        "kind": "region_text",
        "captions": [],
        "regions": [
            {"bbox": [0, 0, 500, 500], "caption": "the whole scene"},
            {"bbox": [110, 0, 20, 10], "caption": "a corner"},
            {"bbox": [5, 5, 10, 10], "caption": "a dot"},
            {"bbox": [5, 5, 0, 10], "caption": "nothing"},
        ],
    }
    fitted, outcomes, reason = fit_record_boxes(record, (120, 90))
    assert reason is None and outcomes == {MOSTLY_OUTSIDE: 1, CLIPPED: 1, DEGENERATE: 1}
    assert fitted["regions"] == [
        {"bbox": [110.0, 0.0, 10.0, 10.0], "caption": "a corner"},
        {"bbox": [5.0, 5.0, 10.0, 10.0], "caption": "a dot"},
    ]
    all_bad = {**record, "regions": [record["regions"][0], record["regions"][3]]}
    assert fit_record_boxes(all_bad, (120, 90))[1:] == ({MOSTLY_OUTSIDE: 1, DEGENERATE: 1}, NO_USABLE_BOX)
    grounding = {"kind": "grounding", "sentences": ["left"], "bbox": [100, 0, 100, 10]}
    assert fit_record_boxes(grounding, (120, 90))[1:] == ({MOSTLY_OUTSIDE: 1}, "box_mostly_outside")
