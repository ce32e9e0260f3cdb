"""MaRVL: English train/dev in the NLVR2-style json list, test and few-shot in IGLUE's json-lines."""

from __future__ import annotations

import json

from x2vlm_core.data.synthetic.datasets import MARVL
from x2vlm_core.data.synthetic.formats.iglue import IGLUE_IMAGES, IglueParts, write_annotations
from x2vlm_core.data.synthetic.pair_statements import pair_statement
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line


def write(world: World, parts: IglueParts) -> SourceEntries:
    rng = world.rng("marvl")
    images = world.path(IGLUE_IMAGES)
    sources = []
    for split, chosen, languages in (
        ("train", parts.train, ["en"]),
        ("dev", parts.dev, ["en"]),
        ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
        ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE]),
    ):
        pairs = [(chosen[i], chosen[i + 1]) for i in range(0, len(chosen) - 1, 2)]
        statements = []
        for left, right in pairs:
            labels = [True, False]
            rng.shuffle(labels)  # one true and one false statement per pair
            statements += [
                (left, right, pair_statement(left.scene, right.scene, rng, label), label) for label in labels
            ]
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            if split in ("train", "dev"):
                text = json.dumps(
                    [
                        {"sentence": sentence, "label": label, "images": [left.file_name, right.file_name]}
                        for left, right, sentence, label in statements
                    ],
                    sort_keys=True,
                )
                relative = f"iglue/marvl/annotations/{split}-{language}.json"
            else:
                text = "".join(
                    json_line(
                        {
                            "id": f"{split}-{n}",
                            "caption": say(sentence),
                            "label": label,
                            "language": language,
                            "concept": "shapes",
                            "left_img": left.file_name,
                            "right_img": right.file_name,
                        }
                    )
                    for n, (left, right, sentence, label) in enumerate(statements)
                )
                relative = f"iglue/marvl/annotations/{split}/marvl-{language}.jsonl"
            sources += write_annotations(
                world, relative, text, len(statements), "marvl", MARVL, split, {"images": images}
            )
    return sources
