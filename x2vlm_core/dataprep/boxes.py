"""Boxes against their image: clipped to it, or dropped when what is left of them describes nothing.

Annotation files hold boxes that leave their image (a Visual Genome region [0, 0, 500, 500] on a
120x90 picture) and boxes without area. Kept as they are, training would clip them later to the
whole image and teach a phrase as a whole-image box, so they are fitted here, once, and counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

CLIPPED = "clipped"  # kept, cut to the image
DEGENERATE = "degenerate"  # dropped: no width or height (or less than a pixel once clipped)
MOSTLY_OUTSIDE = "mostly_outside"  # dropped: less than MIN_INSIDE of its area lies in the image
MIN_INSIDE = 0.5
MIN_SIDE = 1.0  # pixels
# A grounding record has one box: losing it rejects the record; a region record, losing every box.
NO_USABLE_BOX = "no_usable_box"
# Detection proposals are fitted alike, counted apart (a dropped proposal is never a reject).
PROPOSAL = "proposal_"


def fit_box(box: list[float], width: int, height: int) -> tuple[list[float] | None, str | None]:
    """``(box, outcome)``: the box cut to a ``width`` x ``height`` image, outcome CLIPPED or None (unchanged); or ``(None, why dropped)``."""
    x, y, w, h = (float(v) for v in box)
    if w < MIN_SIDE or h < MIN_SIDE:
        return None, DEGENERATE
    left, top, right, bottom = max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height))
    inside_w, inside_h = max(right - left, 0.0), max(bottom - top, 0.0)
    if inside_w * inside_h < MIN_INSIDE * w * h:
        return None, MOSTLY_OUTSIDE
    if inside_w < MIN_SIDE or inside_h < MIN_SIDE:
        return None, DEGENERATE
    fitted = [left, top, inside_w, inside_h]
    return fitted, (CLIPPED if fitted != [x, y, w, h] else None)


def fit_record_boxes(
    record: dict[str, Any], size: tuple[int, int]
) -> tuple[dict[str, Any], dict[str, int], str | None]:
    """Fit a record's ``bbox``, ``regions`` or ``proposals`` to its image's ``size`` (original pixels).

    Returns ``(record, outcomes, reject_reason)``: ``outcomes`` counts boxes clipped and dropped by
    reason; the reason is ``box_<why>`` for a grounding record whose box was dropped, NO_USABLE_BOX
    for a region record left with no box and no caption.
    """
    width, height = size
    outcomes: Counter[str] = Counter()
    fitted = dict(record)
    if "bbox" in record:
        box, outcome = fit_box(record["bbox"], width, height)
        if outcome:
            outcomes[outcome] += 1
        if box is None:
            return record, dict(outcomes), f"box_{outcome}"
        fitted["bbox"] = box
    if "regions" in record:
        regions = []
        for region in record["regions"]:
            box, outcome = fit_box(region["bbox"], width, height)
            if outcome:
                outcomes[outcome] += 1
            if box is not None:
                regions.append({**region, "bbox": box})
        fitted["regions"] = regions
        if record["regions"] and not regions and not record.get("captions"):
            return record, dict(outcomes), NO_USABLE_BOX
    if "proposals" in record:
        proposals = []
        for proposal in record["proposals"]:
            box, outcome = fit_box(proposal, width, height)
            if outcome:
                outcomes[PROPOSAL + outcome] += 1
            if box is not None:
                proposals.append(box)
        fitted["proposals"] = proposals
    return fitted, dict(outcomes), None
