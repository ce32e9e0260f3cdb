"""No module outside a family's package branches on the family: it looks the family up instead.

The scan reads the source (AST) of the library, the components and the pipelines for the two
ways a family branch is written: comparing something named ``family`` (or a ``*FAMILY``
constant) with a family's name, and ``isinstance``/``issubclass``/``type(x) is`` against a
family's config or model class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from x2vlm_core.families import all_families

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("x2vlm_core", "components", "pipelines")


def _family_names() -> tuple[set[str], dict[str, set[str]]]:
    """Family names, and for each family package the class names only it may test against."""
    names, classes = set(), {}
    for family in all_families().values():
        names.add(family.name)
        classes[family.name] = {family.config_class.__name__, family.model_class.__name__}
    return names, classes


def _mentions(node: ast.AST, wanted: set[str]) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id in wanted) or (isinstance(n, ast.Attribute) and n.attr in wanted)
        for n in ast.walk(node)
    )


def _is_family_ref(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Name) and ("family" in n.id.lower()))
        or (isinstance(n, ast.Attribute) and "family" in n.attr.lower())
        or (isinstance(n, ast.Constant) and n.value == "family")
        for n in ast.walk(node)
    )


def family_branches(
    source: str, family_names: set[str], family_classes: set[str], family_constants: bool = True
) -> list[str]:
    """Each ``line: code`` that branches on a family in ``source`` (``family_constants``: count ``*FAMILY`` names)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            names_a_family = any(
                (isinstance(n, ast.Constant) and n.value in family_names)
                or (family_constants and isinstance(n, ast.Name) and n.id.endswith("FAMILY"))  # CCLM_FAMILY
                for side in sides
                for n in ast.walk(side)
            )
            if (names_a_family or any(_mentions(s, {n for n in family_classes}) for s in sides)) and any(
                _is_family_ref(s) or isinstance(s, ast.Call) and getattr(s.func, "id", "") == "type" for s in sides
            ):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("isinstance", "issubclass"):
            if len(node.args) == 2 and _mentions(node.args[1], family_classes):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_each_way_of_branching():
    names, classes = {"vlmo", "cclm"}, {"VLMo", "VLMoConfig", "CCLM"}
    branches = family_branches(
        "if config.family == 'vlmo': pass\n"
        "if getattr(cfg, 'family', None) == CCLM_FAMILY: pass\n"
        "if family_of(cfg) in ('cclm', 'vlmo'): pass\n"
        "if isinstance(model, (XVLM, VLMo)): pass\n"
        "if isinstance(config, vlmo_config.VLMoConfig): pass\n"
        "if type(model) is CCLM: pass\n",
        names,
        classes,
    )
    assert [line.split(":")[0] for line in branches] == ["1", "2", "3", "4", "5", "6"]
    assert (
        family_branches(
            "if family.name in families: pass\nisinstance(x, dict)\nif task == 'vqa': pass\n", names, classes
        )
        == []
    )


@pytest.mark.parametrize("package", SCANNED)
def test_no_module_outside_a_family_package_branches_on_the_family(package):
    names, classes = _family_names()
    every_class = set().union(*classes.values())
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        own = next((name for name in names if relative.startswith(f"x2vlm_core/families/{name}/")), None)
        # A family's own package may test its own classes; the registry (families/*.py) looks up by class.
        if own is not None:
            forbidden, other_names = every_class - classes[own], names - {own}
        elif relative.startswith("x2vlm_core/families/") and relative.count("/") == 2:
            continue
        else:
            forbidden, other_names = every_class, names
        offenders += [
            f"{relative}:{line}" for line in family_branches(path.read_text(), other_names, forbidden, own is None)
        ]
    assert not offenders, "look the family up (x2vlm_core.families) instead of branching on it:\n" + "\n".join(
        offenders
    )
