import pytest

from x2vlm_core.config_io import apply_overrides, from_dict
from x2vlm_core.errors import ConfigError
from x2vlm_core.families import create_model, model_config
from x2vlm_core.run_config import load_run_config
from x2vlm_core.train.config import TrainConfig


def test_unknown_key_is_rejected_with_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stpes'\] in train; valid keys are: .*steps"):
        from_dict(TrainConfig, {"stpes": 10}, where="train")


def test_nested_unknown_key_names_its_path():
    with pytest.raises(ConfigError, match=r"train.optim"):
        from_dict(TrainConfig, {"optim": {"learning_rate": 1.0}}, where="train")


def test_types_are_checked_and_yaml_exponents_accepted():
    cfg = from_dict(TrainConfig, {"optim": {"lr": "5e-4"}, "steps": 3})
    assert cfg.optim.lr == pytest.approx(5e-4) and cfg.steps == 3
    with pytest.raises(ConfigError, match="steps must be int"):
        from_dict(TrainConfig, {"steps": "many"})
    with pytest.raises(ConfigError, match="must be a number"):
        from_dict(TrainConfig, {"optim": {"lr": "fast"}})


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="unknown model preset 'x2vlm_huge'.*x2vlm_base"):
        create_model("x2vlm_huge")


def test_inconsistent_model_config_is_refused():
    with pytest.raises(ConfigError, match="multiple of vision.patch_size"):
        model_config("x2vlm_tiny", image_res=60)


def test_run_config_file_with_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: x2vlm_tiny\ntrain: {steps: 7}\n")
    model_cfg, train_cfg = load_run_config(str(path), None, ["train.batch_size=3", "model.image_res=32"])
    assert model_cfg.name == "x2vlm_tiny" and model_cfg.image_res == 32
    assert train_cfg.steps == 7 and train_cfg.batch_size == 3


def test_run_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_run_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: x2vlm_tiny\n")
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_run_config(str(bad))
    with pytest.raises(ConfigError, match="no model preset"):
        load_run_config(None)
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides({}, ["steps"])
