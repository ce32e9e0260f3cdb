"""SECURITY.md states the limits of the deployment and names modules that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_security_notes_name_modules_that_exist():
    text = (ROOT / "SECURITY.md").read_text()
    assert "one service account" in text.lower()
    named = set(re.findall(r"`((?:x2vlm_core|components|pipelines)/[\w/]+\.py)`", text))
    assert len(named) >= 8
    assert [path for path in sorted(named) if not (ROOT / path).is_file()] == []
