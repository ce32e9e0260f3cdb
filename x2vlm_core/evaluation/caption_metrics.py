"""Captioning scores as the COCO caption evaluation computes them: BLEU-4, METEOR, ROUGE-L, CIDEr (and SPICE).

Captions are PTB-tokenized (lowercased, punctuation tokens dropped) by the Stanford tokenizer that
ships with pycocoevalcap, then scored by its scorers. The tokenizer, METEOR and SPICE run on Java:
without a ``java`` on PATH the captions are tokenized by a close Python stand-in, METEOR and SPICE
are reported unavailable (with the reason) and BLEU / ROUGE-L / CIDEr are still computed.
SPICE also needs Stanford CoreNLP models it downloads on first use, so it is off unless asked for.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from x2vlm_core.errors import X2VLMError

log = logging.getLogger(__name__)

SCORE_NAMES = ("bleu4", "meteor", "rouge_l", "cider")
_PTB_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
# The stand-in splits words, clitics ("do n't", "bike 's") and punctuation the way PTB does for caption text.
_PY_TOKENS = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+|\.\.\.|[^\w\s]")
_PY_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


def _require_pycocoevalcap() -> None:
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        raise X2VLMError("captioning metrics need pycocoevalcap: pip install pycocoevalcap==1.2") from None


def java_available() -> bool:
    return shutil.which("java") is not None


def ptb_tokenize(captions: dict[object, list[str]]) -> dict[object, list[str]]:
    """``{id: [caption, ...]}`` → the same, tokenized and joined by spaces, punctuation tokens removed."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    ids = [key for key, texts in captions.items() for _ in texts]
    lines = [text.replace("\n", " ") for texts in captions.values() for text in texts]
    if java_available():
        jar = Path(ptbtokenizer.__file__).parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
        # Fed on stdin rather than through a temporary file inside the (possibly read-only) package folder.
        done = subprocess.run(
            ["java", "-cp", str(jar), _PTB_CLASS, "-preserveLines", "-lowerCase"],
            input="\n".join(lines),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise X2VLMError(f"the PTB tokenizer failed ({done.stderr.strip()[-300:]}); check the Java install")
        tokenized = done.stdout.split("\n")[: len(lines)]
    else:
        tokenized = [" ".join(_PY_BRACKETS.get(t, t) for t in _PY_TOKENS.findall(line.lower())) for line in lines]
    out: dict[object, list[str]] = {key: [] for key in captions}
    for key, line in zip(ids, tokenized):
        out[key].append(" ".join(word for word in line.rstrip().split(" ") if word not in ptbtokenizer.PUNCTUATIONS))
    return out


def caption_scores(
    references: dict[object, list[str]], generated: dict[object, str], meteor: bool = True, spice: bool = False
) -> tuple[dict[str, float], dict[str, str]]:
    """Corpus-level scores of ``generated[id]`` against ``references[id]``, and ``{score: why unavailable}``.

    Scores are the raw values pycocoevalcap returns (papers print them x100).
    """
    _require_pycocoevalcap()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(generated):
        raise ValueError("every image needs both references and a generated caption")
    if not generated:
        return {}, {}
    gts = ptb_tokenize(references)
    res = ptb_tokenize({key: [caption] for key, caption in generated.items()})
    unavailable: dict[str, str] = {}
    if not java_available():
        unavailable["tokenizer"] = (
            "java not found on PATH: captions were tokenized by a Python stand-in "
            "for the PTB tokenizer, so scores may differ slightly from the official ones"
        )
    scores = {
        "bleu4": Bleu(4).compute_score(gts, res, verbose=0)[0][3],
        "rouge_l": Rouge().compute_score(gts, res)[0],
        "cider": Cider().compute_score(gts, res)[0],
    }
    if not meteor:
        unavailable["meteor"] = "not computed: turned off (meteor=false)"
    elif java_available():
        from pycocoevalcap.meteor.meteor import Meteor

        scores["meteor"] = Meteor().compute_score(gts, res)[0]
    else:
        unavailable["meteor"] = "METEOR runs on Java and java was not found on PATH; install a JRE to get it"
    if spice:
        reason = "SPICE runs on Java and java was not found on PATH" if not java_available() else None
        if reason is None:
            try:
                from pycocoevalcap.spice.spice import Spice

                scores["spice"] = Spice().compute_score(gts, res)[0]
            except Exception as error:  # noqa: BLE001 - its model download or Java run can fail many ways
                reason = (
                    f"SPICE failed ({type(error).__name__}: {error}); it downloads Stanford CoreNLP models on first use"
                )
        if reason:
            unavailable["spice"] = reason
    for name, reason in unavailable.items():
        log.warning("captioning %s: %s", name, reason)
    return {name: float(value) for name, value in scores.items()}, unavailable
