"""The library stands alone: importing any x2vlm_core module loads no KFP layer, no Kubernetes and no Beam.

Only ``x2vlm_core.dataprep.beam_job`` may import apache_beam, and it is loaded when the job runs.
Each check runs in a fresh interpreter, so modules other tests imported cannot hide a violation.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("components", "pipelines", "kfp", "kubernetes", "apache_beam")
BEAM_JOB = "x2vlm_core.dataprep.beam_job"

# Imports every module of a package one by one and reports, per module, the forbidden modules it
# newly loaded: naming the first culprit beats a bare list of what ended up in sys.modules.
_PROBE = """
import importlib, json, pkgutil, sys
package, skip, forbidden = sys.argv[1], set(json.loads(sys.argv[2])), tuple(json.loads(sys.argv[3]))

def loaded():
    return {name for name in sys.modules if any(name == f or name.startswith(f + ".") for f in forbidden)}

found, seen = {}, set()  # a fresh interpreter: anything loaded is blamed on the first module
root = importlib.import_module(package)
names = [package] + sorted(m.name for m in pkgutil.walk_packages(root.__path__, package + ".") if m.name not in skip)
for name in names:
    importlib.import_module(name)
    new = loaded() - seen
    if new:
        found[name] = sorted({module.split(".")[0] for module in new})  # the packages, not their hundreds of submodules
    seen |= new
print(json.dumps({"modules": len(names), "forbidden": found}))
"""


def _probe(package: str, path: Path, skip: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "PYTHONPATH": str(path)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, package, json.dumps(skip), json.dumps(FORBIDDEN)],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_library_module_imports_the_kfp_layer_kubernetes_or_beam():
    result = _probe("x2vlm_core", ROOT, skip=(BEAM_JOB,))
    assert result["modules"] > 50  # the walk really covered the library
    assert result["forbidden"] == {}, f"x2vlm_core modules that import {FORBIDDEN}: {result['forbidden']}"


def test_the_probe_names_a_module_that_reaches_into_the_kfp_layer(tmp_path):
    # Guards the check above against passing vacuously (a probe that never sees an import).
    package = tmp_path / "fakecore"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "clean.py").write_text("import json\n")
    (package / "leaky.py").write_text("import components\n")
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text("")
    assert _probe("fakecore", tmp_path) == {"modules": 3, "forbidden": {"fakecore.leaky": ["components"]}}


def test_no_library_source_imports_them_even_inside_a_function():
    # A function-level import escapes the probe until the function runs (the old CLI did exactly that).
    found = []
    for path in sorted((ROOT / "x2vlm_core").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN and not (top == "apache_beam" and module == BEAM_JOB):
                    found.append(f"{module}:{node.lineno} imports {name}")
    assert not found, found
