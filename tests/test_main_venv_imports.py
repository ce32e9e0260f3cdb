"""The main environment keeps transformers' BERT importable and runnable.

An extra that drags in a CUDA torchvision build (the ``bench`` extra did) breaks
``from transformers import BertModel`` next to the CPU torch. The check runs in a fresh,
isolated interpreter of this environment, so nothing this process imported first (such as
x2vlm_core's torchvision guard) can hide the breakage.
"""

import subprocess
import sys

BERT = """
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
