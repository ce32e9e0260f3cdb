"""The official VQA v2 accuracy (the VQA evaluation tool as X-VLM / X²-VLM ship it) and EvalAI result files.

A predicted answer scores ``min(#annotators who gave it / 3, 1)``, averaged over the ten ways of
leaving one of the ten annotators out. Before comparing, the prediction is normalised (punctuation,
number words, articles, contractions); the human answers only have their punctuation processed, and
only when they disagree, exactly as the official tool does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# The official tool's table: answers written without the apostrophe → the canonical spelling.
CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = {"a", "an", "the"}
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# A period not followed by a digit goes (the official pattern's look-behind is written "(?!<=" and never applies).
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
HUMANS_FOR_FULL_CREDIT = 3


def process_punctuation(text: str) -> str:
    """A mark next to a space (or any text with a digit,digit) is deleted, otherwise it becomes a space."""
    out = text
    for mark in PUNCTUATION:
        if f"{mark} " in text or f" {mark}" in text or _DIGIT_COMMA_DIGIT.search(text):
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out)


def process_digit_article(text: str) -> str:
    """Lowercase; number words → digits; drop articles; restore apostrophes of known contractions."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def normalize_answer(answer: str) -> str:
    """The normalisation the official tool applies to a predicted answer."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(answer))


def vqa_accuracy(predicted: str, human_answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the (ten) human answers; exact match against one."""
    if not human_answers:
        raise ValueError("a VQA question needs its human answers to be scored")
    answer = normalize_answer(predicted)
    humans = list(human_answers)
    if len(humans) == 1:  # GQA / xGQA: one answer per question, scored by exact match
        return float(normalize_answer(humans[0]) == answer)
    if len(set(humans)) > 1:
        humans = [process_punctuation(h) for h in humans]
    per_left_out = []
    for left_out in range(len(humans)):
        others = humans[:left_out] + humans[left_out + 1 :]
        per_left_out.append(min(1.0, sum(h == answer for h in others) / HUMANS_FOR_FULL_CREDIT))
    return sum(per_left_out) / len(per_left_out)


def mean_vqa_accuracy(predicted: Iterable[str], human_answers: Iterable[Sequence[str]]) -> float:
    scores = [vqa_accuracy(p, h) for p, h in zip(predicted, human_answers, strict=True)]
    return sum(scores) / len(scores) if scores else 0.0


def evalai_results(question_ids: Iterable[int], answers: Iterable[str]) -> list[dict[str, object]]:
    """The results file EvalAI takes for VQA v2 test-dev / test-std: ``[{"question_id": int, "answer": str}]``."""
    return [{"question_id": int(q), "answer": a} for q, a in zip(question_ids, answers, strict=True)]
