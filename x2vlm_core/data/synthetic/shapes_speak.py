""" "Shapes-speak" (language code ``xx``): a made-up language with its own vocabulary, for the multilingual formats."""

from __future__ import annotations

import hashlib
import re

SYNTHETIC_LANGUAGE = "xx"
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "gu", "fe")


def translate(text: str) -> str:
    """The caption in "shapes-speak": every word replaced by its own made-up word (numbers kept)."""

    def word(match: re.Match) -> str:
        token = match.group(0)
        if token.isdigit():
            return token
        digest = hashlib.sha256(token.lower().encode("utf-8")).digest()
        return "".join(_SYLLABLES[b % len(_SYLLABLES)] for b in digest[: 1 + min(3, len(token) // 3)])

    return re.sub(r"[A-Za-z0-9]+", word, text)
