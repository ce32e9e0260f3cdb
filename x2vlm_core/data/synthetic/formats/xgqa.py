"""xGQA: English training questions in the LXMERT list IGLUE trains on, the rest in GQA's own layout."""

from __future__ import annotations

import json

from x2vlm_core.data.synthetic.datasets import XGQA
from x2vlm_core.data.synthetic.formats.iglue import IGLUE_IMAGES, IglueParts, stem, write_annotations
from x2vlm_core.data.synthetic.questions import questions_for
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate
from x2vlm_core.data.synthetic.world import SourceEntries, World


def write(world: World, parts: IglueParts) -> SourceEntries:
    rng = world.rng("xgqa")
    images = world.path(IGLUE_IMAGES)
    questions = {image.image_id: questions_for(image.scene, rng) for image in parts.all()}
    sources = []
    lxmert = [
        {"img_id": stem(image), "sent": q.text, "question_id": f"{image.image_id}{n:02d}", "label": {q.answer: 1.0}}
        for image in parts.train
        for n, q in enumerate(questions[image.image_id])
    ]
    sources += write_annotations(
        world,
        "iglue/xGQA/annotations/en/train.json",
        json.dumps(lxmert, sort_keys=True),
        len(lxmert),
        "xgqa",
        XGQA,
        "train",
        {"images": images},
    )
    for split, chosen, language, relative in (
        ("val", parts.dev, "en", "en/dev.json"),
        ("test", parts.test, "en", "zero_shot/en/test.json"),
        ("test", parts.test, SYNTHETIC_LANGUAGE, f"zero_shot/{SYNTHETIC_LANGUAGE}/test.json"),
        ("few_shot", parts.few_shot, SYNTHETIC_LANGUAGE, f"few_shot/{SYNTHETIC_LANGUAGE}/train.json"),
    ):
        say = translate if language == SYNTHETIC_LANGUAGE else str
        # Answers stay English in every language, as in xGQA.
        gqa = {
            f"{image.image_id}{n:02d}": {
                "imageId": stem(image),
                "question": say(q.text),
                "answer": q.answer,
                "types": {"structural": "verify" if q.answer_type == "yes/no" else "query"},
            }
            for image in chosen
            for n, q in enumerate(questions[image.image_id])
        }
        sources += write_annotations(
            world,
            f"iglue/xGQA/annotations/{relative}",
            json.dumps(gqa, sort_keys=True),
            len(gqa),
            "xgqa",
            XGQA,
            split,
            {"images": images},
        )
    return sources
