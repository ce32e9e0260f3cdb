"""`python -m pipelines`: compile, upload, run and schedule the pipelines on a Kubeflow Pipelines API.

python -m pipelines compile --pipeline all --output-dir pipelines/compiled
python -m pipelines upload --host http://localhost:8080 --pipeline full --version v3
python -m pipelines run --host http://localhost:8080 --param sources=gs://b/sources.yaml --param num_nodes=4
python -m pipelines schedule --host http://localhost:8080 --cron "0 0 3 * * 0" --version v3 --param sources=gs://b/s.yaml
python -m pipelines runs list --host http://localhost:8080
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

import yaml
from kfp import compiler

from pipelines import full_pretrain_finetune, single_task_finetune
from pipelines.deployment import load_settings
from x2vlm_core.config_io import load_yaml, parse_yaml_value
from x2vlm_core.errors import ConfigError, X2VLMError, shown

PIPELINES = {"full": full_pretrain_finetune, "single-task": single_task_finetune}
HOST_ENV = "KF_PIPELINES_ENDPOINT"  # the variable kfp.Client itself reads
TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # where KFP projects a service-account token in a pod
DEFAULT_SERVICE_ACCOUNT = "x2vlm-pipeline"
# KFP replaces it in a recurring run's parameters with each run's scheduled time
# (backend/src/common/util/parameter_formatter.go), so every scheduled run sees a new data snapshot.
SCHEDULED_TIME = "[[ScheduledTime]]"


class SubmitError(X2VLMError):
    """The KFP API cannot be reached, refuses us, or the request is wrong."""


# --------------------------------------------------------------------------------------------
# Compiling


def compile_package(pipeline: str, output: str, settings_path: Optional[str] = None) -> str:
    module = PIPELINES[pipeline]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(module.build_pipeline(load_settings(settings_path)), package_path=output)
    return output


def _package(args: argparse.Namespace, workdir: str) -> str:
    """A precompiled ``--package``, or the chosen pipeline compiled now; caching off with ``--no-cache``."""
    if args.package:
        if not Path(args.package).is_file():
            raise ConfigError(
                f"pipeline package {args.package} not found; compile it with "
                "`python -m pipelines compile` or leave out --package"
            )
        package = args.package
    else:
        package = compile_package(args.pipeline, str(Path(workdir) / f"{args.pipeline}.yaml"), args.settings)
    return without_caching(package, workdir) if getattr(args, "no_cache", False) else package


def without_caching(package: str, workdir: str) -> str:
    """A copy of the package with caching off in every task. (kfp.Client's own `enable_caching=False`
    reaches only the top-level tasks; ours sit inside the exit handler and the loop.)"""
    with open(package) as f:
        docs = list(yaml.safe_load_all(f))
    for dag in [docs[0]["root"], *docs[0].get("components", {}).values()]:
        for task in dag.get("dag", {}).get("tasks", {}).values():
            task["cachingOptions"] = {"enableCache": False}
    path = str(Path(workdir) / ("no-cache-" + Path(package).name))
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    return path


def _pipeline_parameters(package: str) -> dict[str, Any]:
    with open(package) as f:
        spec = next(yaml.safe_load_all(f))
    return spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})


def parse_params(items: list[str], params_file: Optional[str], package: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values read as YAML: numbers, lists) over a YAML file; names checked."""
    params: dict[str, Any] = {}
    if params_file:
        params.update(load_yaml(params_file))  # a missing file or bad YAML is a one-line ConfigError
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {shown(item)} must look like NAME=VALUE, e.g. --param num_nodes=4")
        name, raw = item.split("=", 1)
        params[name.strip()] = parse_yaml_value(raw, f"--param {shown(name.strip())}")
    known = _pipeline_parameters(package)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown pipeline parameter(s) {shown(unknown)}; this pipeline takes: {', '.join(sorted(known))}"
        )
    missing = sorted(
        n for n, d in known.items() if "defaultValue" not in d and not d.get("isOptional") and n not in params
    )
    if missing:
        raise ConfigError(f"missing required pipeline parameter(s) {missing}; pass --param NAME=VALUE")
    return params


# --------------------------------------------------------------------------------------------
# Talking to the KFP API


def _probe(host: str, timeout: float = 10.0) -> None:
    """Fail fast, in one line, when nothing answers at ``host`` (an HTTP error still means it answered)."""
    try:
        urllib.request.urlopen(host.rstrip("/") + "/apis/v2beta1/healthz", timeout=timeout).close()
    except urllib.error.HTTPError:
        pass
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise SubmitError(
            f"cannot reach the Kubeflow Pipelines API at {host} ({reason}); check --host, e.g. "
            "`kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80` and --host "
            "http://localhost:8080"
        ) from None


def _token(args: argparse.Namespace) -> Optional[str]:
    if args.existing_token:
        return args.existing_token
    path = args.token_file or os.environ.get(TOKEN_PATH_ENV)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as error:
            raise SubmitError(
                f"cannot read the token file {path} ({error.strerror}); pass --token-file or --existing-token"
            ) from None
    return None


def connect(args: argparse.Namespace):
    import kfp

    host = args.host = args.host or os.environ.get(HOST_ENV)
    if not host:
        raise SubmitError(f"no Kubeflow Pipelines host: pass --host URL or set {HOST_ENV}")
    token = _token(args)
    for warning in token_warnings(host, token, bool(args.existing_token)):
        print(f"python -m pipelines: warning: {warning}", file=sys.stderr)
    _probe(host)
    # kfp.Client's own default namespace is "kubeflow"; requests below pass ours only when one was given.
    return _call(host, lambda: kfp.Client(host=host, namespace=args.namespace or "kubeflow", existing_token=token))


def token_warnings(host: str, token: Optional[str], on_command_line: bool) -> list[str]:
    """What is unsafe about how the bearer token travels: in the process list, or unencrypted off this machine."""
    warnings = []
    if on_command_line:
        warnings.append(
            "--existing-token shows the token to every user of this machine (process list) and in "
            "shell history; put it in a file readable only by you and pass --token-file"
        )
    name = urllib.parse.urlsplit(host).hostname or ""
    loopback = name in ("localhost", "::1") or name.startswith("127.")  # a port-forward: never on the network
    if token and host.lower().startswith("http://") and not loopback:
        warnings.append(
            f"the token goes to {host} over plain http://, readable by anyone on the network path; "
            "use https://, or a port-forward to localhost"
        )
    return warnings


def _call(host: str, action: Callable[[], Any]) -> Any:
    """Run a KFP client call; turn its network and HTTP failures into one-line errors."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        return action()
    except ApiException as error:
        if error.status in (401, 403):
            raise SubmitError(
                f"the KFP API at {host} refused the request (HTTP {error.status}); pass a valid "
                "--existing-token or --token-file, and a --namespace you may use"
            ) from None
        detail = (str(error.body or error.reason or "").strip().splitlines() or [""])[0]
        raise SubmitError(f"the KFP API at {host} answered HTTP {error.status}: {detail[:300]}") from None
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
        raise SubmitError(
            f"cannot reach the Kubeflow Pipelines API at {host} ({type(error).__name__}); check --host and the network"
        ) from None


# --------------------------------------------------------------------------------------------
# Commands


def cmd_compile(args: argparse.Namespace) -> dict[str, Any]:
    names = list(PIPELINES) if args.pipeline == "all" else [args.pipeline]
    if args.output and len(names) > 1:
        raise ConfigError("--output names one file; use --output-dir with --pipeline all")
    written = []
    for name in names:
        output = args.output or str(Path(args.output_dir) / f"{PIPELINES[name].__name__.rsplit('.', 1)[-1]}.yaml")
        written.append(compile_package(name, output, args.settings))
    return {"compiled": written}


def cmd_upload(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    package = _package(args, workdir)
    client = connect(args)
    name = args.name or PIPELINES[args.pipeline].NAME
    pipeline_id = _call(args.host, lambda: client.get_pipeline_id(name))
    if pipeline_id is None:
        pipeline = _call(
            args.host,
            lambda: client.upload_pipeline(
                package, pipeline_name=name, description=args.description, namespace=args.namespace
            ),
        )
        return {"pipeline": name, "pipeline_id": pipeline.pipeline_id, "created": True}
    if not args.version:
        raise ConfigError(f"pipeline {name!r} exists already; pass --version NAME to add a version to it")
    version = _call(
        args.host,
        lambda: client.upload_pipeline_version(
            package, pipeline_version_name=args.version, pipeline_id=pipeline_id, description=args.description
        ),
    )
    return {
        "pipeline": name,
        "pipeline_id": pipeline_id,
        "version": args.version,
        "version_id": version.pipeline_version_id,
    }


def cmd_run(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    package = _package(args, workdir)
    params = parse_params(args.param, args.params_file, package)
    client = connect(args)
    result = _call(
        args.host,
        lambda: client.create_run_from_pipeline_package(
            package,
            arguments=params,
            run_name=args.run_name,
            experiment_name=args.experiment,
            namespace=args.namespace,
            pipeline_root=args.pipeline_root,
            service_account=args.service_account,
        ),
    )
    return {"run_id": result.run_id, "experiment": args.experiment, "parameters": params}


def cmd_schedule(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """A recurring run of an uploaded pipeline version (never a package embedded in the schedule)."""
    if len(args.cron.split()) != 6:
        raise ConfigError(f'--cron {args.cron!r} needs 6 fields (seconds first), e.g. "0 0 3 * * *" for 03:00 daily')
    if args.max_concurrency < 1:
        raise ConfigError(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
    package = _package(args, workdir)  # the parameter names to check against
    params = parse_params(args.param, args.params_file, package)
    if "data_snapshot" in _pipeline_parameters(package):
        params.setdefault("data_snapshot", SCHEDULED_TIME)
    client = connect(args)
    pipeline_name = PIPELINES[args.pipeline].NAME
    pipeline_id = _call(args.host, lambda: client.get_pipeline_id(pipeline_name))
    if pipeline_id is None:
        raise SubmitError(
            f"pipeline {pipeline_name!r} is not uploaded; schedules run an uploaded version: "
            f"python -m pipelines upload --pipeline {args.pipeline}"
        )
    version_id, version = _pipeline_version(client, args.host, pipeline_id, pipeline_name, args.version)
    experiment = _call(args.host, lambda: client.create_experiment(args.experiment, namespace=args.namespace))
    name = args.name or f"{PIPELINES[args.pipeline].NAME}-schedule"
    # no_catchup: after a pause, start only the latest missed run, never a backlog of them.
    recurring = _call(
        args.host,
        lambda: client.create_recurring_run(
            experiment_id=experiment.experiment_id,
            job_name=name,
            cron_expression=args.cron,
            max_concurrency=args.max_concurrency,
            no_catchup=True,
            params=params,
            pipeline_id=pipeline_id,
            version_id=version_id,
            pipeline_root=args.pipeline_root,
            service_account=args.service_account,
        ),
    )
    return {
        "recurring_run_id": recurring.recurring_run_id,
        "name": name,
        "cron": args.cron,
        "max_concurrency": args.max_concurrency,
        "catch_up": False,
        "pipeline_id": pipeline_id,
        "version": version,
        "version_id": version_id,
        "parameters": params,
    }


def _pipeline_version(
    client, host: str, pipeline_id: str, pipeline_name: str, wanted: Optional[str]
) -> tuple[str, str]:
    """(id, name) of the version named ``wanted``, or of the newest version."""
    response = _call(host, lambda: client.list_pipeline_versions(pipeline_id, page_size=200, sort_by="created_at desc"))
    versions = list(response.pipeline_versions or [])
    if not versions:
        raise SubmitError(f"pipeline {pipeline_name!r} has no version; upload one with --version NAME")
    if wanted is None:
        return versions[0].pipeline_version_id, versions[0].display_name
    for version in versions:
        if version.display_name == wanted:
            return version.pipeline_version_id, version.display_name
    raise ConfigError(
        f"pipeline {pipeline_name!r} has no version {wanted!r}; it has: {', '.join(v.display_name for v in versions)}"
    )


def cmd_runs_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    client = connect(args)
    experiment_id = None
    if args.experiment:
        experiment_id = _call(
            args.host, lambda: client.get_experiment(experiment_name=args.experiment, namespace=args.namespace)
        ).experiment_id
    response = _call(
        args.host,
        lambda: client.list_runs(
            page_size=args.page_size, sort_by="created_at desc", experiment_id=experiment_id, namespace=args.namespace
        ),
    )
    return [
        {
            "run_id": r.run_id,
            "name": r.display_name,
            "state": r.state,
            "created_at": r.created_at.isoformat() if hasattr(r.created_at, "isoformat") else r.created_at,
        }
        for r in response.runs or []
    ]


# --------------------------------------------------------------------------------------------
# Arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--host",
        default=os.environ.get(HOST_ENV),
        help=f"KFP API endpoint, e.g. http://localhost:8080 (default: ${HOST_ENV})",
    )
    api.add_argument("--namespace", help="KFP profile namespace, in multi-user mode")
    auth = api.add_mutually_exclusive_group()
    auth.add_argument(
        "--existing-token",
        help="bearer token (e.g. `gcloud auth print-access-token`); other users "
        "can read it in the process list: prefer --token-file",
    )
    auth.add_argument("--token-file", help=f"file holding a bearer token (default: ${TOKEN_PATH_ENV})")

    choose = argparse.ArgumentParser(add_help=False)
    choose.add_argument("--pipeline", choices=sorted(PIPELINES), default="full")
    choose.add_argument("--package", help="a compiled pipeline YAML (default: compile --pipeline now)")
    choose.add_argument("--settings", help="deployment settings YAML used when compiling")

    launch = argparse.ArgumentParser(add_help=False)
    launch.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter, value read as YAML (e.g. tasks=[retrieval,grounding])",
    )
    launch.add_argument("--params-file", help="YAML mapping of pipeline parameters")
    launch.add_argument("--experiment", default="x2vlm")
    launch.add_argument(
        "--service-account", default=DEFAULT_SERVICE_ACCOUNT, help="Kubernetes service account of the run's pods"
    )
    launch.add_argument("--pipeline-root", help="where artifacts go, e.g. gs://bucket/pipeline-root")
    launch.add_argument("--no-cache", action="store_true", help="run every step again, ignoring cached results")

    p = sub.add_parser("compile", help="write the pipeline IR YAML")
    p.add_argument("--pipeline", choices=sorted(PIPELINES) + ["all"], default="full")
    p.add_argument("--output", help="output file (one pipeline)")
    p.add_argument("--output-dir", default="pipelines/compiled")
    p.add_argument("--settings", help="deployment settings YAML (see pipelines/deployment.py)")

    p = sub.add_parser("upload", parents=[api, choose], help="upload the pipeline, or a new version of it")
    p.add_argument("--name", help="pipeline name in the UI (default: the pipeline's own)")
    p.add_argument("--version", help="version name, needed when the pipeline exists already")
    p.add_argument("--description")

    sub.add_parser("run", parents=[api, choose, launch], help="start a run").add_argument("--run-name")

    p = sub.add_parser("schedule", parents=[api, choose, launch], help="create a recurring run (cron)")
    p.add_argument("--cron", required=True, help='6-field cron, seconds first: "0 0 3 * * 0" = Sundays 03:00')
    p.add_argument("--name", help="recurring run name")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs of this schedule allowed at once")
    p.add_argument("--version", help="the uploaded pipeline version to run (default: the newest)")

    runs = sub.add_parser("runs", help="inspect runs").add_subparsers(dest="runs_command", required=True)
    p = runs.add_parser("list", parents=[api], help="the latest runs, newest first")
    p.add_argument("--experiment", help="only this experiment's runs")
    p.add_argument("--page-size", type=int, default=20)
    return parser


def run(args: argparse.Namespace) -> Any:
    if args.command == "compile":
        return cmd_compile(args)
    if args.command == "runs":
        return cmd_runs_list(args)
    with tempfile.TemporaryDirectory(prefix="x2vlm-pipeline-") as workdir:
        return {"upload": cmd_upload, "run": cmd_run, "schedule": cmd_schedule}[args.command](args, workdir)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except X2VLMError as error:
        print(f"python -m pipelines {args.command}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0
