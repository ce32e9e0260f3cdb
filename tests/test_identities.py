"""Which Kubernetes identity runs what, and how the KFP API token travels."""

from pathlib import Path

import pytest
import yaml
from test_submit_cli import TOKEN, _cli, kfp_api  # noqa: F401  (fixture)

from components.runtime import trainjob
from components.runtime.trainjob import TrainJobSpec, build_trainjob, train_as_trainjob
from pipelines.deployment import load_settings
from pipelines.submit import token_warnings
from x2vlm_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _spec(**kw):
    return TrainJobSpec(
        **{
            "name": "x2vlm-pretrain-abc",
            "namespace": "x2vlm",
            "image": "img",
            "command": ["true"],
            "num_nodes": 1,
            "gpus_per_node": 0,
            **kw,
        }
    )


def test_trainer_pods_cannot_run_as_an_account_with_api_rights(tmp_path, monkeypatch):
    # What such an account could do from a pod that parses untrusted shards: create TrainJobs.
    rbac = list(yaml.safe_load_all((ROOT / "manifests/base/namespaced/rbac.yaml").read_text()))
    binding = next(d for d in rbac if d["kind"] == "RoleBinding")
    role = next(d for d in rbac if d["kind"] == "Role")
    assert {"name": "x2vlm-pipeline", "kind": "ServiceAccount", "namespace": "x2vlm"} in binding["subjects"]
    assert any("create" in r["verbs"] and "trainjobs" in r["resources"] for r in role["rules"])

    assert build_trainjob(_spec(service_account="x2vlm-trainer"))
    with pytest.raises(ConfigError, match="trainer service account 'x2vlm-pipeline' is not one of") as err:
        build_trainjob(_spec(service_account="x2vlm-pipeline"))
    assert "\n" not in str(err.value)

    def no_cluster():
        raise AssertionError("reached the cluster")

    monkeypatch.setattr(trainjob, "connect", no_cluster)
    with pytest.raises(ConfigError, match="is not one of"):
        train_as_trainjob(
            ["pretrain"],
            "gs://b/m",
            "/tmp/m",
            [],
            input_uris=[],
            num_nodes=1,
            gpus_per_node=0,
            pods={"service_account": "default"},
        )

    (tmp_path / "settings.yaml").write_text("trainer_service_account: x2vlm-pipeline\n")
    with pytest.raises(ConfigError, match="is not one of"):  # at compile time already
        load_settings(str(tmp_path / "settings.yaml"))


def test_token_warnings_name_the_process_list_and_plain_http():
    assert token_warnings("https://kfp.example.com", "t", on_command_line=False) == []
    assert token_warnings("http://localhost:8080", "t", on_command_line=False) == []  # a port-forward
    assert token_warnings("http://10.0.0.5:8888", None, on_command_line=False) == []  # no token sent
    (plain,) = token_warnings("http://kfp.example.com", "t", on_command_line=False)
    assert "over plain http://" in plain
    (listed, plain) = token_warnings("http://kfp.example.com", "t", on_command_line=True)
    assert "process list" in listed and "--token-file" in listed


def test_the_cli_warns_on_existing_token_and_not_on_a_token_file(kfp_api, capsys, tmp_path):  # noqa: F811
    code, _, err = _cli(capsys, "runs", "list", "--host", kfp_api.url, "--existing-token", TOKEN)
    assert code == 0 and "warning: --existing-token shows the token" in err and "--token-file" in err
    (tmp_path / "token").write_text(TOKEN)
    code, _, err = _cli(capsys, "runs", "list", "--host", kfp_api.url, "--token-file", str(tmp_path / "token"))
    assert code == 0 and "warning" not in err
