"""VQA v2 over the COCO images: v2_OpenEnded_mscoco_*_questions.json and v2_mscoco_*_annotations.json."""

from __future__ import annotations

import random

from x2vlm_core.data.synthetic.datasets import VQA
from x2vlm_core.data.synthetic.formats.coco_captions import SPLIT_FOLDERS, CocoImage
from x2vlm_core.data.synthetic.questions import Question, questions_for
from x2vlm_core.data.synthetic.world import SourceEntries, World


def _human_answers(question: Question, rng: random.Random) -> list[str]:
    """Ten annotator answers: mostly right, a few wrong, some with stray case/space (as in real VQA)."""
    wrong = rng.choice((0, 0, 0, 1, 1, 2, 3))
    answers = [rng.choice(question.distractors) for _ in range(wrong)]
    for _ in range(10 - wrong):
        style = rng.random()
        answers.append(
            question.answer.capitalize() if style < 0.1 else question.answer + " " if style < 0.15 else question.answer
        )
    rng.shuffle(answers)
    return answers


def write(world: World, coco_images: list[CocoImage]) -> SourceEntries:
    rng = world.rng("vqa")
    sources = []
    for folder, split in SPLIT_FOLDERS:
        questions, annotations = [], []
        for image in (i for i in coco_images if i.folder == folder):
            for number, question in enumerate(questions_for(image.scene, rng)):
                question_id = image.image_id * 1000 + number
                answers = _human_answers(question, rng)
                questions.append({"image_id": image.image_id, "question": question.text, "question_id": question_id})
                annotations.append(
                    {
                        "question_id": question_id,
                        "image_id": image.image_id,
                        "question_type": question.question_type,
                        "answer_type": question.answer_type,
                        "multiple_choice_answer": question.answer,
                        "answers": [
                            {
                                "answer": answer,
                                "answer_confidence": "yes" if answer.strip().lower() == question.answer else "maybe",
                                "answer_id": answer_id,
                            }
                            for answer_id, answer in enumerate(answers, start=1)
                        ],
                    }
                )
        header = {
            "info": {"description": "x2vlm synthetic shapes world"},
            "license": {},
            "data_type": "mscoco",
            "data_subtype": folder,
        }
        questions_file = f"vqa/v2_OpenEnded_mscoco_{folder}_questions.json"
        annotations_file = f"vqa/v2_mscoco_{folder}_annotations.json"
        world.write_json(questions_file, {**header, "task_type": "Open-Ended", "questions": questions})
        world.write_json(annotations_file, {**header, "annotations": annotations})
        world.counts[VQA][split] += len(questions)
        sources.append(
            {
                "format": "vqa_v2",
                "dataset": VQA,
                "split": split,
                "questions": world.path(questions_file),
                "annotations": world.path(annotations_file),
                "images": world.path(f"coco/{folder}"),
            }
        )
    return sources
