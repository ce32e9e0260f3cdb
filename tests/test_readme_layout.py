"""The README's Layout table names only paths that exist, and every top-level package of the library."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_paths() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout") :]
    table = table[: table.index("\n## ", 1)]
    return [
        path
        for row in table.splitlines()
        if row.startswith("| `")
        for path in re.findall(r"`([^`]+)`", row.split("|")[1])
    ]


def test_every_path_in_the_layout_table_exists():
    paths = _layout_paths()
    assert len(paths) > 10
    missing = [
        path for path in paths if not (ROOT / path).exists() and not (ROOT / "x2vlm_core" / path).exists()
    ]  # `dataprep/` beside `x2vlm_core/data/`
    assert not missing, f"the README's Layout table names paths that do not exist: {missing}"


def test_every_library_package_is_in_the_layout_table():
    named = " ".join(_layout_paths())
    packages = sorted(p.name for p in (ROOT / "x2vlm_core").iterdir() if (p / "__init__.py").is_file())
    unnamed = [name for name in packages if f"{name}/" not in named]
    assert not unnamed, f"library packages the README's Layout table does not describe: {unnamed}"
