"""Our model against the official X²-VLM code: same size, same weights, same loss, then speed.

    make bench-venv   # .venv-bench: this repository plus what the official code imports
    .venv-bench/bin/python benchmarks/compare_official.py --official ../X2-VLM --device cpu --precision fp32 --batch 2
    .venv-bench/bin/python benchmarks/compare_official.py --official ../X2-VLM --device cuda --precision bf16 --batch 64

``--official`` is a checkout of github.com/zengyan-97/X2-VLM. Its model is imported from there
(``models.model_pretrain.XVLM``); nothing of it is copied into this repository. Steps:

1. build our preset and the official model at the same size (BEiT-2 base or large vision
   encoder, depth as the preset says; the BERT text/fusion stack from a config.json written
   for the preset), and load our state dict into the official model (same names; only
   ``temp`` changes shape, [1] here and [] there);
2. in fp32, evaluation mode, with the same fixed ITM negatives on both sides, compute every
   pre-training loss term on the same random batch and print the differences (they must
   stay below 1e-4, or the script stops: a timing of two different functions means nothing);
3. time forward + backward of the full pre-training loss (ITC + ITM with hard negatives + MLM
   on the image-text batch; the same plus box L1 + GIoU on the region batch), training mode,
   at ``--precision``, the two models taking turns step by step so that both see the same
   machine load; print a table with official time / our time.

The official code needs ``torch.distributed`` initialised (its ITC gathers features across
ranks): a one-process group is started (gloo on CPU, NCCL on GPU).

Compatibility shims, installed in this process before the official modules are imported; the
transformers ones map transformers 4 names the official code uses onto transformers 5, and
only where the name is missing (the docstring decorators and ``init_weights``: under 5.x):
- ``transformers.file_utils`` (a ``sys.modules`` entry): ``ModelOutput``, now in
  ``transformers.utils``, and the docstring decorators as no-ops (transformers 5 validates the
  docstrings they are given, and the official output classes have none).
- ``transformers.modeling_utils``: ``apply_chunking_to_forward`` and ``prune_linear_layer`` now
  live in ``transformers.pytorch_utils`` and are mapped back; ``get_parameter_dtype`` returns the
  first floating parameter's dtype; ``find_pruneable_heads_and_indices`` (head pruning, never used
  here) raises if called.
- the official ``BertPreTrainedModel`` gets transformers 4's ``invert_attention_mask``,
  ``get_head_mask`` (both removed from ``PreTrainedModel``) and ``init_weights`` (initialise,
  then tie the MLM decoder to the word embeddings; 5.x's needs state the class never sets up).
- ``utils`` and ``dataset``: the model code imports only ``read_json`` and ``build_tokenizer``
  from these packages, whose ``__init__`` pull in the data-loading stack (HDFS helpers,
  torchvision datasets, COCO tools); they are entered in ``sys.modules`` with just those names
  (``dataset.tokenizers`` itself is the checkout's).
- torchvision (needed by timm and the official ``box_ops``): PyPI's wheel for CPU-only torch is
  a CUDA build whose C extension cannot load; torchvision then fails at import while
  registering fake kernels for ``torchvision::nms``/``qnms``. The two schemas are defined
  first in that case (the ops are never called).

Run it from ``.venv-bench`` (``make bench-venv``), never from ``.venv``: the ``bench`` extra's
torchvision would break transformers' model imports there.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import socket
import sys
import tempfile
import time
import types
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
import transformers
from record import append_entry, command_line
from train_step import random_batches

from x2vlm_core.errors import ConfigError, X2VLMError
from x2vlm_core.families import create_model, model_config
from x2vlm_core.families.x2vlm.model import XVLM
from x2vlm_core.models import losses
from x2vlm_core.models.compile import compile_encoders
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.text.wordpiece import tokenizer_dir
from x2vlm_core.train.pretrain_objective import pretraining_losses

LOSS_ATOL = 1e-4
# The official builder knows two BEiT-2 shapes (configs/config_beit2_{base,large}.json).
OFFICIAL_VISION = {"base": (768, 12, 16), "large": (1024, 16, 16)}  # width, heads, patch
# official_tiny: the shape of the official parity fixture (BEiT-2 base width, 1 block, 48 px;
# a 3-layer BERT of width 32), the smallest model the official builder makes.
OFFICIAL_TINY = dict(
    image_res=48,
    embed_dim=16,
    vision={"depth": 1},
    text={
        "vocab_size": 64,
        "hidden_size": 32,
        "num_layers": 3,
        "fusion_start_at": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    },
)
EXTRA_PRESETS = {"official_tiny": ("x2vlm_base", OFFICIAL_TINY)}
TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
_KEEP_ALIVE: list[object] = []  # torch.library definitions live as long as their Library object


# --------------------------------------------------------------------------- compatibility shims


def _let_torchvision_import_without_its_extension() -> None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    for extension in Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(extension))
            return  # a torchvision that matches this torch: nothing to do
        except OSError:
            pass
    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP_ALIVE.append(library)


def _unavailable(name: str):
    def fail(*args, **kwargs):
        raise NotImplementedError(f"{name} was removed from transformers; the benchmark does not need it")

    return fail


def _first_float_dtype(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def _keep_docstring(*args, **kwargs):
    return lambda obj: obj


def _map_transformers_4_names() -> None:
    import transformers.modeling_utils as modeling_utils
    import transformers.pytorch_utils as pytorch_utils
    from transformers.utils import ModelOutput

    if TRANSFORMERS_5:
        decorators = (
            "add_code_sample_docstrings",
            "add_start_docstrings",
            "add_start_docstrings_to_model_forward",
            "replace_return_docstrings",
        )
        _package_with(
            "transformers.file_utils", None, ModelOutput=ModelOutput, **{name: _keep_docstring for name in decorators}
        )

    shims = {
        "apply_chunking_to_forward": pytorch_utils.apply_chunking_to_forward,
        "prune_linear_layer": pytorch_utils.prune_linear_layer,
        "get_parameter_dtype": _first_float_dtype,
        "find_pruneable_heads_and_indices": _unavailable("find_pruneable_heads_and_indices"),
    }
    for name, value in shims.items():
        if not hasattr(modeling_utils, name):
            setattr(modeling_utils, name, value)


def _invert_attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
    """transformers 4's ``ModuleUtilsMixin.invert_attention_mask``: 1/0 keep-mask → additive bias."""
    extended = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
    extended = extended.to(dtype=self.dtype)
    return (1.0 - extended) * torch.finfo(self.dtype).min


def _init_weights(self) -> None:
    """transformers 4's ``PreTrainedModel.init_weights``: initialise, then tie the MLM decoder to the
    word embeddings (transformers 5's needs ``post_init`` state the official classes never set up)."""
    self.apply(self._init_weights)
    output = self.get_output_embeddings()
    if output is not None and getattr(self.config, "tie_word_embeddings", True):
        output.weight = self.get_input_embeddings().weight


def _get_head_mask(self, head_mask, num_hidden_layers: int, is_attention_chunked: bool = False):
    if head_mask is not None:
        raise NotImplementedError("head masks are not used by X²-VLM")
    return [None] * num_hidden_layers


def _package_with(name: str, path: Path | None, **names) -> types.ModuleType:
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = [str(path)]  # its submodules import from the checkout as usual
    module.__dict__.update(names)
    sys.modules[name] = module
    return module


def import_official_xvlm(checkout: Path):
    """``models.model_pretrain.XVLM`` from ``checkout``, with the shims above installed."""
    if not (checkout / "models" / "model_pretrain.py").is_file():
        raise ConfigError(
            f"{checkout} is not an X2-VLM checkout (no models/model_pretrain.py); "
            "pass --official PATH to a clone of github.com/zengyan-97/X2-VLM"
        )
    _let_torchvision_import_without_its_extension()
    _map_transformers_4_names()
    sys.path.insert(0, str(checkout))

    def read_json(path):
        with open(path) as f:
            return json.load(f)

    _package_with("utils", None, read_json=read_json)
    dataset = _package_with("dataset", checkout / "dataset")
    from dataset.tokenizers import build_tokenizer  # noqa: E402 (the checkout's own)

    dataset.build_tokenizer = build_tokenizer
    try:
        from models import xbert
        from models.model_pretrain import XVLM as OfficialXVLM
    except ImportError as error:
        raise ConfigError(
            f"the official code needs a package that is missing ({error}); "
            "run this script from the bench venv: make bench-venv, then .venv-bench/bin/python"
        ) from None
    for name, method in (("invert_attention_mask", _invert_attention_mask), ("get_head_mask", _get_head_mask)):
        if not hasattr(xbert.BertPreTrainedModel, name):
            setattr(xbert.BertPreTrainedModel, name, method)
    if TRANSFORMERS_5:
        xbert.BertPreTrainedModel.init_weights = _init_weights
    return OfficialXVLM


# --------------------------------------------------------------------------- the two models


def preset_config(
    name: str, vision_depth: int | None, text_layers: int | None, fusion_start_at: int | None
) -> ModelConfig:
    base, overrides = EXTRA_PRESETS.get(name, (name, {}))
    overrides = {**overrides, "vision": dict(overrides.get("vision", {})), "text": dict(overrides.get("text", {}))}
    if vision_depth:
        overrides["vision"]["depth"] = vision_depth
    if text_layers:
        overrides["text"]["num_layers"] = text_layers
    if fusion_start_at is not None:
        overrides["text"]["fusion_start_at"] = fusion_start_at
    return model_config(base, **overrides)


def official_vision_size(cfg: ModelConfig) -> str:
    shape = (cfg.vision.width, cfg.vision.num_heads, cfg.vision.patch_size)
    for size, official in OFFICIAL_VISION.items():
        if shape == official and cfg.vision.mlp_ratio == 4.0:
            return size
    raise ConfigError(
        f"preset {cfg.name}: vision width {shape[0]}, {shape[1]} heads, patch {shape[2]} has no "
        "official counterpart (the official code builds BEiT-2 base or large only); "
        f"use x2vlm_base, x2vlm_large or {', '.join(EXTRA_PRESETS)}"
    )


def official_config(cfg: ModelConfig, folder: Path) -> dict:
    """The official config dict for ``cfg``, with its vision json and BERT folder in ``folder``."""
    size = official_vision_size(cfg)
    vision_json = folder / f"config_beit2_{size}.json"  # the builder picks base/large by this name
    vision_json.write_text(json.dumps({"vision_width": cfg.vision.width, "patch_size": cfg.vision.patch_size}))
    bert = folder / "bert-base-uncased"  # the tokenizer builder picks BertTokenizer by this name
    bert.mkdir()
    t = cfg.text
    (bert / "config.json").write_text(
        json.dumps(
            {
                "model_type": "bert",
                "architectures": ["BertForMaskedLM"],
                "vocab_size": t.vocab_size,
                "hidden_size": t.hidden_size,
                "num_hidden_layers": t.num_layers,
                "num_attention_heads": t.num_heads,
                "intermediate_size": t.intermediate_size,
                "hidden_act": "gelu",
                "hidden_dropout_prob": t.hidden_dropout,
                "attention_probs_dropout_prob": t.attention_dropout,
                "max_position_embeddings": t.max_position_embeddings,
                "type_vocab_size": t.type_vocab_size,
                "initializer_range": 0.02,
                "layer_norm_eps": t.layer_norm_eps,
                "pad_token_id": t.pad_token_id,
            }
        )
    )
    (bert / "vocab.txt").write_bytes((tokenizer_dir(cfg.tokenizer) / "vocab.txt").read_bytes())
    return {
        "use_beit_v2": True,
        "vision_config": str(vision_json),
        "image_res": cfg.image_res,
        "patch_size": cfg.vision.patch_size,
        "vision_num_hidden_layers": cfg.vision.depth,
        "local_attn_depth": -1,
        "text_encoder": str(bert),
        "text_num_hidden_layers": t.num_layers,
        "text_fusion_start_at": t.fusion_start_at,
        "embed_dim": cfg.embed_dim,
        "temp": cfg.temp,
    }


def build_official(OfficialXVLM, cfg: ModelConfig, ours: XVLM):
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        official = OfficialXVLM(
            official_config(cfg, Path(folder)), load_vision_params=False, load_text_params=False, pretraining=False
        )
    state = ours.state_dict()
    state["temp"] = state["temp"].reshape(())
    result = official.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(
            f"state dicts differ: official lacks {result.unexpected_keys[:5]}, ours lacks {result.missing_keys[:5]}"
        )
    mlm = official.text_encoder
    if mlm.cls.predictions.decoder.weight is not mlm.bert.embeddings.word_embeddings.weight:
        raise RuntimeError("the official MLM decoder is not tied to the word embeddings, as it is in training")
    return official


# --------------------------------------------------------------------------- losses and timing


def official_losses(official, image_batch, region_batch) -> dict[str, torch.Tensor]:
    """The official pre-training forward on both batches, under our loss names."""
    texts = {k: image_batch[k] for k in ("text_ids_masked", "masked_pos", "masked_ids")}
    image = official(image_batch["image"], image_batch["text_ids"], image_batch["text_atts"], **texts)
    region_texts = {
        k: region_batch[k]
        for k in (
            "text_ids_masked",
            "masked_pos",
            "masked_ids",
            "image_atts",
            "idx_to_group_img",
            "target_bbox",
            "is_image",
        )
    }
    region = official(
        region_batch["image"], region_batch["text_ids"], region_batch["text_atts"], ret_bbox_loss=True, **region_texts
    )
    out = {name: image[f"loss_{name}"] for name in ("itc", "itm", "mlm")}
    out.update({f"region_{name}": region[f"loss_{name}"] for name in ("itc", "itm", "mlm", "bbox", "giou")})
    return out


@contextlib.contextmanager
def fixed_negatives(official):
    """Both models take sample i-1 as the hard negative of sample i (no sampling, same ITM)."""

    def ours(image_feat, text_feat, temp, idx=None):
        neg = torch.roll(torch.arange(image_feat.shape[0], device=image_feat.device), 1)
        return neg, neg

    def theirs(image_feat, text_feat, idx=None):
        neg = torch.roll(torch.arange(image_feat.shape[0]), 1).tolist()
        return neg, neg

    with (
        mock.patch.object(losses, "sample_hard_negatives", ours),
        mock.patch.object(official, "get_hard_negatives", theirs, create=True),
    ):
        yield


def loss_differences(ours: XVLM, official, batches) -> dict[str, tuple[float, float]]:
    ours.eval()
    official.eval()
    with torch.no_grad(), fixed_negatives(official):
        a = pretraining_losses(ours, *batches)
        b = official_losses(official, *batches)
    return {name: (a[name].item(), b[name].item()) for name in a}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_both(models: dict, batches, device: torch.device, precision: str, steps: int, warmup: int):
    """Per model, the timed steps' forward + backward: wall seconds and process CPU seconds.

    The models alternate step by step, so that both meet the same machine load. On a shared
    CPU the process's CPU time is the steadier measure: other processes stretch wall time.
    """
    taken = {name: {"wall": [], "cpu": []} for name in models}
    for model, _ in models.values():
        model.train()
    for i in range(warmup + steps):
        for name, (model, loss_fn) in models.items():
            _sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = sum(loss_fn(model, *batches).values())
            loss.backward()
            _sync(device)
            if i >= warmup:
                taken[name]["wall"].append(time.perf_counter() - wall)
                taken[name]["cpu"].append(time.process_time() - cpu)
            model.zero_grad(set_to_none=True)
    return taken


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def start_one_process_group(device: torch.device) -> None:
    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of github.com/zengyan-97/X2-VLM")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=2, help="image-text pairs; the region batch has as many texts")
    parser.add_argument(
        "--preset",
        default="x2vlm_base",
        choices=["x2vlm_base", "x2vlm_large", *EXTRA_PRESETS],
        help="official_tiny: the parity fixture's shape, the smallest the official code builds",
    )
    parser.add_argument("--vision-depth", type=int, help="fewer BEiT-2 blocks than the preset (both models)")
    parser.add_argument("--text-layers", type=int, help="fewer BERT layers than the preset (both models)")
    parser.add_argument("--fusion-start-at", type=int, help="first fusion layer, with --text-layers")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time our model with its blocks compiled (x2vlm_core.models.compile); warm-up includes it",
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    device = torch.device(args.device)

    lines = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    cfg = preset_config(args.preset, args.vision_depth, args.text_layers, args.fusion_start_at)
    official_vision_size(cfg)
    OfficialXVLM = import_official_xvlm(args.official.resolve())
    start_one_process_group(device)
    torch.manual_seed(0)
    ours = create_model(cfg).to(device)
    official = build_official(OfficialXVLM, cfg, ours).to(device)
    batches = random_batches(args.batch, cfg, device)
    shape = (
        f"{args.preset}: vision {cfg.vision.width}x{cfg.vision.depth} blocks, text {cfg.text.hidden_size}x"
        f"{cfg.text.num_layers} layers (fusion from {cfg.text.fusion_start_at}), {cfg.image_res} px; "
        f"{sum(p.numel() for p in ours.parameters()) / 1e6:.2f}M parameters"
    )
    emit(shape)

    diffs = loss_differences(ours, official, batches)
    emit(
        f"same weights, fp32, eval mode, fixed ITM negatives, batch {args.batch}: loss terms (ours / official / |diff|)"
    )
    for name, (a, b) in diffs.items():
        emit(f"  {name:<12} {a:.6f}  {b:.6f}  {abs(a - b):.2e}")
    worst = max(abs(a - b) for a, b in diffs.values())
    emit(f"  max |diff| {worst:.2e}")
    if not worst <= LOSS_ATOL:
        raise SystemExit(f"the two models disagree by {worst:.2e} > {LOSS_ATOL}: not timing different functions")

    if args.compile:
        compile_encoders(ours)
    times = time_both(
        {"official": (official, official_losses), "ours": (ours, pretraining_losses)},
        batches,
        device,
        args.precision,
        args.steps,
        args.warmup,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    emit(
        f"forward+backward of the pre-training loss (ITC+ITM+MLM, plus box losses on the region batch); "
        f"{args.warmup} warm-up + {args.steps} timed steps each, alternating; {name}"
    )
    off, our = times["official"], times["ours"]
    header = "| preset | device | precision | batch | official s/step (best) | ours s/step (best) | official / ours |"
    precision = args.precision + (", ours compiled" if args.compile else "")
    row = (
        f"| {args.preset} | {device.type} | {precision} | {args.batch} "
        f"| {_mean(off['wall']):.3f} ({min(off['wall']):.3f}) | {_mean(our['wall']):.3f} ({min(our['wall']):.3f}) "
        f"| {_mean(off['wall']) / _mean(our['wall']):.2f}x |"
    )
    if device.type == "cpu":
        header += " official CPU s/step | ours CPU s/step | official / ours, CPU time |"
        row += f" {_mean(off['cpu']):.3f} | {_mean(our['cpu']):.3f} | {_mean(off['cpu']) / _mean(our['cpu']):.2f}x |"
    emit(header)
    emit("|" + " --- |" * (header.count("|") - 1))
    emit(row)
    dist.destroy_process_group()
    if not args.no_record:
        append_entry(
            f"our model vs the official X²-VLM code, {args.preset}, {args.precision}, {device.type}",
            command_line(),
            "\n".join(lines),
            notes=[
                "Same weights in both (our state dict loaded into the official model); one step = "
                "image-text batch + region batch of as many texts over batch/4 images, 40 tokens."
            ],
        )


if __name__ == "__main__":
    try:
        main()
    except X2VLMError as error:
        sys.exit(f"error: {error}")
