"""The main environment keeps transformers' BERT importable and runnable.

The CUDA torchvision build that timm brings breaks ``from transformers import BertModel`` next
to the CPU torch unless ``x2vlm_core`` (its torchvision guard) is imported first, as every entry
point of the project does. The check runs in a fresh, isolated interpreter of this environment,
so nothing this process imported first can hide a breakage.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BERT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import x2vlm_core
import torch
from transformers import BertConfig, BertModel
config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
out = BertModel(config).eval()(torch.tensor([[1, 2, 3]])).last_hidden_state
assert out.shape == (1, 3, 8), out.shape
print("ok")
"""


def test_bert_model_imports_and_runs_in_a_fresh_interpreter():
    done = subprocess.run([sys.executable, "-I", "-c", BERT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
