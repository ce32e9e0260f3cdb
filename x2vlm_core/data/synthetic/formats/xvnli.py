"""XVNLI json-lines (iglue/XVNLI/annotations/{language}/{split}.jsonl): Flikr30kID, sentence1, sentence2, gold_label."""

from __future__ import annotations

import random

from x2vlm_core.data.synthetic.captions import shapes_word
from x2vlm_core.data.synthetic.datasets import XVNLI
from x2vlm_core.data.synthetic.formats.iglue import IGLUE_IMAGES, IglueParts, stem, write_annotations
from x2vlm_core.data.synthetic.scenes import COLOURS, SHAPE_KINDS, Scene
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate
from x2vlm_core.data.synthetic.world import SourceEntries, World, json_line

_MATERIALS = ("wood", "paper", "metal", "glass")


def _entailment_hypotheses(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """One hypothesis per label, decided by the scene: entailment true of it, contradiction false of it,
    neutral about what no picture shows (the material of a shape that is there)."""
    count = len(scene.shapes)
    shown = rng.choice(scene.shapes)
    absent = rng.choice([(c, k) for c in COLOURS for k in SHAPE_KINDS if not scene.has(c, k)])
    if rng.random() < 0.5:
        entailment, contradiction = f"there is a {shown.name}", f"there is a {absent[0]} {absent[1]}"
    else:
        wrong = rng.choice([n for n in range(1, 5) if n != count])
        entailment, contradiction = (f"there {'is' if n == 1 else 'are'} {shapes_word(n)}" for n in (count, wrong))
    neutral = f"the {rng.choice(scene.shapes).name} is made of {rng.choice(_MATERIALS)}"
    return [(entailment, "entailment"), (contradiction, "contradiction"), (neutral, "neutral")]


def write(world: World, parts: IglueParts) -> SourceEntries:
    rng = world.rng("xvnli")
    images = world.path(IGLUE_IMAGES)
    per_image = {image.image_id: _entailment_hypotheses(image.scene, rng) for image in parts.all()}
    sources = []
    for split, chosen, languages in (
        ("train", parts.train, ["en"]),
        ("dev", parts.dev, ["en"]),
        ("test", parts.test, ["en", SYNTHETIC_LANGUAGE]),
        ("few_shot", parts.few_shot, [SYNTHETIC_LANGUAGE]),
    ):
        for language in languages:
            say = translate if language == SYNTHETIC_LANGUAGE else str
            lines = [
                json_line(
                    {
                        "Flikr30kID": stem(image),
                        "sentence1": say(image.captions[0]),
                        "sentence2": say(hypothesis),
                        "gold_label": label,
                        "pairID": f"{image.image_id}-{label}",
                    }
                )
                for image in chosen
                for hypothesis, label in per_image[image.image_id]
            ]
            name = "train" if split == "few_shot" else split  # IGLUE's few-shot files are the language's train
            sources += write_annotations(
                world,
                f"iglue/XVNLI/annotations/{language}/{name}.jsonl",
                "".join(lines),
                len(lines),
                "xvnli",
                XVNLI,
                split,
                {"images": images},
            )
    return sources
