"""timm, torchvision and transformers' BERT import together once x2vlm_core is imported.

PyPI's torchvision is a CUDA build whose import fails next to a CPU-only torch, and then takes
timm and transformers' model imports down with it; ``x2vlm_core.torchvision_guard`` prevents
that. Each check runs in a fresh interpreter of this environment, so nothing this test process
imported first can hide a breakage.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORTS = """
import sys
import x2vlm_core
# Importing the library is cheap: the guard waits for the first torchvision import.
assert "torch" not in sys.modules and "torchvision" not in sys.modules, sorted(sys.modules)[:5]
import torch
from transformers import BertConfig, BertModel
config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
assert BertModel(config).eval()(torch.tensor([[1, 2, 3]])).last_hidden_state.shape == (1, 3, 8)
import timm
import torchvision
from torchvision.transforms import InterpolationMode
swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0, depths=(1, 1, 1, 1))
assert swin(torch.randn(1, 3, 224, 224)).shape == (1, 768)
print("ok")
"""


def run_fresh(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def test_bert_timm_and_torchvision_import_in_a_fresh_interpreter():
    done = run_fresh(IMPORTS)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_guard_leaves_an_already_working_torchvision_alone():
    # Once torchvision is imported, installing the guard again must not define anything.
    done = run_fresh(
        "import x2vlm_core, torchvision\nfrom x2vlm_core import torchvision_guard as g\n"
        "g.install()\nimport sys\nassert not any(isinstance(f, g._BeforeTorchvision) for f in sys.meta_path)\n"
        "assert not g.define_missing_schemas()\nprint('ok')"
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
