"""Lineage: the metadata each artifact carries, and `x2vlm lineage` on a real local run's folder."""

import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from x2vlm_core.cli import main
from x2vlm_core.errors import DataError
from x2vlm_core.release.lineage import code_version, data_fingerprint, read_run_lineage, render_html, render_text


def test_code_version_prefers_the_baked_in_commit(monkeypatch):
    monkeypatch.setenv("X2VLM_GIT_COMMIT", "0123abc")
    assert code_version() == "0123abc"
    monkeypatch.delenv("X2VLM_GIT_COMMIT")
    # From the checkout (a commit, maybe marked dirty), or "unknown" outside one.
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", code_version())


def test_data_fingerprint_follows_the_index(tmp_path):
    index = {
        "total": 5,
        "datasets": {
            "retrieval": {
                "train": {"count": 3, "shards": [{"path": "a.tar"}]},
                "test": {"count": 2, "shards": [{"path": "b.tar"}]},
            }
        },
    }
    (tmp_path / "index.json").write_text(json.dumps(index))
    first = data_fingerprint(str(tmp_path))
    assert first["samples"] == 5 and first["shards"] == 2
    assert first["splits"] == {
        "retrieval/test": {"samples": 2, "shards": 1},
        "retrieval/train": {"samples": 3, "shards": 1},
    }
    index["datasets"]["retrieval"]["test"]["shards"][0]["path"] = "c.tar"
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert data_fingerprint(str(tmp_path))["index_sha256"] != first["index_sha256"]


def test_a_folder_without_a_run_is_refused(tmp_path, capsys):
    with pytest.raises(DataError, match="no executor_output.json under"):
        read_run_lineage(tmp_path)
    assert main(["lineage", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_lineage_of_a_real_local_run(local_pipeline_run, tmp_path, capsys):
    run_dir, done = local_pipeline_run
    assert done.returncode == 0, done.stderr[-3000:]
    graph = read_run_lineage(run_dir)
    assert re.fullmatch(r"x2vlm-full-pretrain-finetune-[-\d]+", Path(graph.root).name)  # the pipeline run's folder
    by_label = {n.label: n for n in graph.artifacts.values()}
    assert (
        sum(re.fullmatch(r"for-loop-\d+-iteration-\d+/finetune/model", label) is not None for label in by_label) == 2
    ), sorted(by_label)
    shards, pretrained = by_label["prepare-data/shards"], by_label["pretrain/model"]

    # Every stage's output names what it was made from, the code, and the data it saw.
    assert shards.parents == []
    assert pretrained.parents == [shards.uri]
    assert pretrained.metadata["code_version"] and pretrained.metadata["data"]["index_sha256"]
    assert pretrained.metadata["data"]["samples"] == shards.metadata["total_samples"]
    assert pretrained.metadata["training"]["steps"] == 6 and pretrained.metadata["parent_model"] == ""
    finetuned = [n for n in graph.artifacts.values() if n.label.endswith("finetune/model")]
    for model in finetuned:
        assert set(model.parents) == {shards.uri, pretrained.uri}
        assert model.metadata["parent_model"] == pretrained.uri
    metrics = [n for n in graph.artifacts.values() if n.label.endswith("evaluate/metrics")]
    assert {m.metadata["task"] for m in metrics} == {"retrieval", "grounding"}
    for m in metrics:
        assert m.metadata["inputs"]["model"] in {f.uri for f in finetuned}
    release = by_label["publish/release"]
    assert set(release.parents) == {pretrained.uri} | {m.uri for m in metrics}
    assert by_label["record-run-status/run_status"].metadata["state"] == "SUCCEEDED"

    # The command: text on stdout, a self-contained HTML/SVG picture with a box per artifact, an arrow per link.
    picture = tmp_path / "lineage.html"
    assert main(["lineage", str(run_dir), "--html", str(picture)]) == 0
    out = capsys.readouterr().out
    assert f"{len(graph.artifacts)} artifacts, {len(graph.links)} links" in out
    assert out.index("prepare-data/shards") < out.index("pretrain/model") < out.index("finetune/model")
    assert f"from: {shards.label}" in out
    page = picture.read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<svg" in page
        and "http" not in page.split("<svg", 1)[1].replace("http://www.w3.org/2000/svg", "")
    )  # nothing fetched from elsewhere
    svg = ElementTree.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])  # well-formed
    assert len(svg.findall(".//{http://www.w3.org/2000/svg}rect")) == len(graph.artifacts)
    assert page.count('marker-end="url(#arrow)"') == len(graph.links)
    assert render_text(graph).splitlines()[0].endswith(f"{len(graph.artifacts)} artifacts, {len(graph.links)} links")
    assert render_html(graph) == page


def test_every_artifact_of_a_local_run_but_the_sources_has_a_parent(local_pipeline_run):
    run_dir, done = local_pipeline_run
    assert done.returncode == 0, done.stderr[-3000:]
    graph = read_run_lineage(run_dir)
    orphans = [node.label for node in graph.artifacts.values() if not node.parents]
    assert orphans == ["prepare-data/shards"]  # made from the sources file, which is no artifact
    published = [node for node in graph.artifacts.values() if node.task == "published"]
    (release_record,) = [node for node in graph.artifacts.values() if "release_uri" in node.metadata]
    assert [node.parents for node in published] == [[release_record.uri]]
    assert Path(published[0].uri, "manifest.json").is_file()
    reports = [node for node in graph.artifacts.values() if node.name == "report"]
    assert reports and all(node.parents for node in reports)
    status = next(node for node in graph.artifacts.values() if "state" in node.metadata)
    assert published[0].uri in status.parents


def test_the_page_falls_back_to_columns_without_graphviz(local_pipeline_run, monkeypatch):
    from x2vlm_core.release import lineage

    graph = read_run_lineage(local_pipeline_run[0])
    monkeypatch.setattr(lineage.shutil, "which", lambda name: None)
    page = render_html(graph)
    assert page.count("<rect") == len(graph.artifacts) and page.count("marker-end") == len(graph.links)


def test_the_lineage_page_renders_in_a_browser(local_pipeline_run, tmp_path):
    """What a person sees: the page drawn by headless Chromium, wide enough for the whole flow."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium to render the page)")
    page = tmp_path / "lineage.html"
    page.write_text(render_html(read_run_lineage(local_pipeline_run[0])))
    shot = tmp_path / "lineage.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1400,900",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1400, 900)
        # The graph is drawn: well over a few percent of the pixels are not white.
        drawn = sum(1 for pixel in image.convert("L").getdata() if pixel < 240)
        assert drawn > 0.02 * 1400 * 900
