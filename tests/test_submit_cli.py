"""`python -m pipelines`: compile, upload, run, schedule and list runs, against a fake KFP API server.

The fake is a small HTTP server implementing the v2beta1 REST endpoints that kfp.Client calls
(healthz, experiments, pipelines/upload[_version], runs, recurringruns); the real client talks to it.
"""

import email.parser
import email.policy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from pipelines.submit import main

TOKEN = "s3cret"
API = "/apis/v2beta1"


class FakeKfp:
    """Records every request; answers like the KFP API server. Requires ``Bearer s3cret`` except on healthz."""

    def __init__(self):
        self.requests, self.pipelines, self.versions, self.experiments = [], {}, {}, {}
        self.runs, self.recurring = [], []
        self.version_names = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((method, url.path, query))
                if url.path == f"{API}/healthz":
                    return self._send(200, {"multi_user": False})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error_message": "Unauthorized", "code": 16})
                body = self._body(raw)
                answer = fake.answer(method, url.path, query, body)
                self._send(*answer) if isinstance(answer, tuple) else self._send(200, answer)

            def _body(self, raw):
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("multipart/form-data"):
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {kind}\r\n\r\n".encode() + raw
                    )
                    parts = {
                        part.get_param("name", header="content-disposition"): part.get_content()
                        for part in message.iter_parts()
                    }
                    return {k: v.decode() if isinstance(v, bytes) else v for k, v in parts.items()}
                return json.loads(raw) if raw else {}

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method, path, query, body):
        def named(items):
            wanted = json.loads(query.get("filter", "{}")).get("predicates", [{}])[0].get("stringValue")
            return [item for item in items if item["display_name"] == wanted]

        if (method, path) == ("GET", f"{API}/experiments"):
            found = named(list(self.experiments.values()))
            return {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/experiments"):
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments[experiment["experiment_id"]] = experiment
            return experiment
        if (method, path) == ("GET", f"{API}/pipelines"):
            found = named(list(self.pipelines.values()))
            return {"pipelines": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            pipeline = {
                "pipeline_id": f"p-{len(self.pipelines) + 1}",
                "display_name": query["name"],
                "description": query.get("description"),
            }
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self.versions[pipeline["pipeline_id"]] = [body["uploadfile"]]
            return pipeline
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            versions = self.versions[query["pipelineid"]]
            versions.append(body["uploadfile"])
            self.version_names.setdefault(query["pipelineid"], []).append(query["name"])
            return {
                "pipeline_id": query["pipelineid"],
                "display_name": query["name"],
                "pipeline_version_id": f"v-{len(versions)}",
            }
        match = re.fullmatch(f"{API}/pipelines/([^/]+)/versions", path)
        if method == "GET" and match:
            names = [self.pipelines[match.group(1)]["display_name"], *self.version_names.get(match.group(1), [])]
            versions = [
                {"pipeline_id": match.group(1), "pipeline_version_id": f"v-{i + 1}", "display_name": name}
                for i, name in enumerate(names)
            ]
            return {"pipeline_versions": list(reversed(versions)), "total_size": len(versions)}
        if (method, path) == ("POST", f"{API}/runs"):
            run = {
                **body,
                "run_id": f"run-{len(self.runs) + 1}",
                "state": "PENDING",
                "created_at": "2026-01-02T03:04:05Z",
            }
            self.runs.append(run)
            return run
        if (method, path) == ("GET", f"{API}/runs"):
            runs = [
                {k: r[k] for k in ("run_id", "display_name", "state", "created_at", "experiment_id")}
                for r in reversed(self.runs)
            ]
            return {"runs": runs[: int(query.get("page_size", 10))], "total_size": len(runs)}
        if (method, path) == ("POST", f"{API}/recurringruns"):
            recurring = {**body, "recurring_run_id": f"rr-{len(self.recurring) + 1}"}
            self.recurring.append(recurring)
            return recurring
        return 404, {"error_message": f"no route {method} {path}"}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kfp_api(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from elsewhere
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.delenv("KF_PIPELINES_SA_TOKEN_PATH", raising=False)
    fake = FakeKfp()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Both pipelines compiled once, through the CLI."""
    out = tmp_path_factory.mktemp("compiled")
    assert main(["compile", "--pipeline", "all", "--output-dir", str(out)]) == 0
    return {"full": out / "full_pretrain_finetune.yaml", "single-task": out / "single_task_finetune.yaml"}


def _cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(out):
    """The CLI's JSON result, after any lines kfp.Client prints itself (links to the UI)."""
    return json.loads(out[out.index("{\n") :])


def test_compile_writes_both_pipelines(packages):
    for name, path in packages.items():
        spec = next(yaml.safe_load_all(path.read_text()))
        assert (
            spec["pipelineInfo"]["name"]
            == {"full": "x2vlm-full-pretrain-finetune", "single-task": "x2vlm-single-task-finetune"}[name]
        )


def test_upload_then_a_new_version(kfp_api, packages, capsys):
    auth = ["--host", kfp_api.url, "--existing-token", TOKEN, "--package", str(packages["full"])]
    code, out, err = _cli(capsys, "upload", *auth, "--description", "nightly platform pipeline")
    assert code == 0, err
    assert _json(out)["created"] is True
    (pipeline,) = kfp_api.pipelines.values()
    assert pipeline["display_name"] == "x2vlm-full-pretrain-finetune"
    (uploaded,) = kfp_api.versions[pipeline["pipeline_id"]]
    assert next(yaml.safe_load_all(uploaded))["pipelineInfo"]["name"] == pipeline["display_name"]

    code, _, err = _cli(capsys, "upload", *auth)
    assert code == 2 and "exists already; pass --version" in err
    code, out, _ = _cli(capsys, "upload", *auth, "--version", "v2")
    assert code == 0 and _json(out)["version_id"] == "v-2"


def test_run_sends_parameters_service_account_and_token(kfp_api, packages, capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, err = _cli(
        capsys,
        "run",
        "--host",
        kfp_api.url,
        "--token-file",
        str(token_file),
        "--package",
        str(packages["full"]),
        "--experiment",
        "nightly",
        "--param",
        "sources=gs://data/sources.yaml",
        "--param",
        "num_nodes=4",
        "--param",
        "tasks=[retrieval]",
        "--pipeline-root",
        "gs://data/root",
        "--no-cache",
    )
    assert code == 0, err
    assert _json(out)["run_id"] == "run-1"
    (run,) = kfp_api.runs
    assert run["runtime_config"]["parameters"] == {
        "sources": "gs://data/sources.yaml",
        "num_nodes": 4,
        "tasks": ["retrieval"],
    }
    assert run["runtime_config"]["pipeline_root"] == "gs://data/root"
    assert run["service_account"] == "x2vlm-pipeline"
    assert run["experiment_id"] == "exp-1" and kfp_api.experiments["exp-1"]["display_name"] == "nightly"
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "x2vlm-full-pretrain-finetune"
    assert run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]  # the kubernetes settings go along
    # --no-cache: caching is off in every submitted task, prepare-data inside the exit handler included.
    tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert not tasks["prepare-data"]["cachingOptions"].get("enableCache")

    code, out, _ = _cli(
        capsys, "runs", "list", "--host", kfp_api.url, "--existing-token", TOKEN, "--namespace", "x2vlm"
    )
    assert code == 0 and json.loads(out) == [
        {"run_id": "run-1", "name": run["display_name"], "state": "PENDING", "created_at": "2026-01-02T03:04:05+00:00"}
    ]
    (listed,) = [q for method, path, q in kfp_api.requests if (method, path) == ("GET", f"{API}/runs")]
    assert listed["namespace"] == "x2vlm" and listed["sort_by"] == "created_at desc"


def test_run_checks_parameter_names_before_sending(kfp_api, packages, capsys):
    base = ["run", "--host", kfp_api.url, "--existing-token", TOKEN, "--package", str(packages["single-task"])]
    code, _, err = _cli(capsys, *base, "--param", "task=retrieval", "--param", "base_model=gs://m")
    assert code == 2 and "unknown pipeline parameter(s) ['base_model']; this pipeline takes:" in err
    code, _, err = _cli(capsys, *base, "--param", "task=retrieval")
    assert code == 2 and "missing required pipeline parameter(s) ['base_model_uri', 'shards_uri']" in err
    assert not kfp_api.runs


def test_schedule_creates_a_cron_recurring_run_without_catch_up(kfp_api, packages, capsys):
    auth = ["--host", kfp_api.url, "--existing-token", TOKEN, "--package", str(packages["full"])]
    schedule = [
        "schedule",
        *auth,
        "--cron",
        "0 0 3 * * 0",
        "--max-concurrency",
        "2",
        "--param",
        "sources=gs://data/sources.yaml",
        "--service-account",
        "x2vlm-nightly",
    ]
    code, _, err = _cli(capsys, *schedule)
    assert code == 2 and "is not uploaded; schedules run an uploaded version" in err
    assert _cli(capsys, "upload", *auth)[0] == 0 and _cli(capsys, "upload", *auth, "--version", "v2")[0] == 0

    code, _, err = _cli(capsys, *schedule, "--version", "v9")
    assert code == 2 and "has no version 'v9'; it has: v2, x2vlm-full-pretrain-finetune" in err
    code, out, err = _cli(capsys, *schedule)
    assert code == 0, err
    (recurring,) = kfp_api.recurring
    # The newest uploaded version, by reference: no pipeline package inside the schedule.
    assert recurring["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "v-2"}
    assert not recurring.get("pipeline_spec")
    assert _json(out)["version"] == "v2"
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 0"
    assert recurring["max_concurrency"] == "2" or recurring["max_concurrency"] == 2
    assert recurring["no_catchup"] is True and recurring["mode"] == "ENABLE"
    assert recurring["service_account"] == "x2vlm-nightly"
    # Each scheduled run is a new data snapshot, so it is never answered from the cache.
    assert recurring["runtime_config"]["parameters"] == {
        "sources": "gs://data/sources.yaml",
        "data_snapshot": "[[ScheduledTime]]",
    }
    assert _json(out)["recurring_run_id"] == "rr-1"

    code, _, err = _cli(
        capsys,
        "schedule",
        "--host",
        kfp_api.url,
        "--package",
        str(packages["full"]),
        "--cron",
        "0 3 * * *",
        "--param",
        "sources=x",
    )
    assert code == 2 and "needs 6 fields" in err


def test_missing_or_wrong_credentials_are_named(kfp_api, packages, capsys):
    code, _, err = _cli(capsys, "runs", "list", "--host", kfp_api.url)
    assert code == 2 and "refused the request (HTTP 401)" in err and "--existing-token" in err
    code, _, err = _cli(capsys, "runs", "list", "--host", kfp_api.url, "--token-file", "/nonexistent/token")
    assert code == 2 and "cannot read the token file /nonexistent/token" in err


def test_unreachable_host_fails_in_one_line(capsys, monkeypatch, packages):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = _cli(
        capsys, "run", "--host", f"http://127.0.0.1:{port}", "--package", str(packages["full"]), "--param", "sources=x"
    )
    assert code == 2
    assert err.count("\n") == 1 and f"cannot reach the Kubeflow Pipelines API at http://127.0.0.1:{port}" in err
    code, _, err = _cli(capsys, "runs", "list")
    assert code == 2 and "no Kubeflow Pipelines host: pass --host URL or set KF_PIPELINES_ENDPOINT" in err
