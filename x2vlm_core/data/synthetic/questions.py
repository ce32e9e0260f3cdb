"""Questions about a scene with one unambiguous answer each (asked by VQA v2 and xGQA)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from x2vlm_core.data.synthetic.scenes import COLOURS, SHAPE_KINDS, Scene


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    question_type: str
    answer_type: str
    distractors: tuple[str, ...]


def questions_for(scene: Scene, rng: random.Random) -> list[Question]:
    """Three questions with unambiguous answers: a count, a yes/no, and a colour or shape question."""
    count = len(scene.shapes)
    questions = [
        Question(
            "how many shapes are there?",
            str(count),
            "how many",
            "number",
            tuple(str(n) for n in range(1, 5) if n != count),
        )
    ]
    colour, kind = rng.choice(list(COLOURS)), rng.choice(SHAPE_KINDS)
    if rng.random() < 0.5:  # half the yes/no questions ask about a shape that is there
        shown = rng.choice(scene.shapes)
        colour, kind = shown.colour, shown.kind
    present = "yes" if scene.has(colour, kind) else "no"
    questions.append(
        Question(
            f"is there a {colour} {kind}?", present, "is there a", "yes/no", ("no" if present == "yes" else "yes",)
        )
    )
    unique_kind = [s for s in scene.shapes if sum(o.kind == s.kind for o in scene.shapes) == 1]
    unique_colour = [s for s in scene.shapes if sum(o.colour == s.colour for o in scene.shapes) == 1]
    if unique_kind and (not unique_colour or rng.random() < 0.5):
        shape = rng.choice(unique_kind)
        others = tuple(c for c in COLOURS if c != shape.colour)
        questions.append(
            Question(f"what color is the {shape.kind}?", shape.colour, "what color is the", "other", others)
        )
    elif unique_colour:
        shape = rng.choice(unique_colour)
        others = tuple(k for k in SHAPE_KINDS if k != shape.kind)
        questions.append(
            Question(f"what shape is the {shape.colour} object?", shape.kind, "what shape is the", "other", others)
        )
    return questions
