"""Lineage: what every artifact was made from, and the artifact graph of a local run.

Two halves, both plain JSON:

* metadata helpers the stages add to their outputs (``code_version``, ``data_fingerprint``,
  ``lineage_metadata``), so an artifact names the code, data and parents it came from;
* ``read_run_lineage`` / ``render_text`` / ``render_html``: the graph of a ``kfp.local`` run,
  rebuilt from the ``executor_output.json`` file each task writes (no metadata store runs
  locally). An artifact links to another when its metadata names that artifact's URI.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x2vlm_core import storage
from x2vlm_core.data.shards import INDEX_FILE
from x2vlm_core.errors import DataError

# Set when an image is built (`docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)`).
CODE_VERSION_ENV = "X2VLM_GIT_COMMIT"
EXECUTOR_OUTPUT = "executor_output.json"


def code_version() -> str:
    """The git commit of the running code: the image's baked-in value, else the checkout's, else "unknown"."""
    baked = os.environ.get(CODE_VERSION_ENV, "").strip()
    if baked:
        return baked
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    # Uncommitted edits make the commit alone an incomplete description of the code.
    return f"{commit}-dirty" if dirty else commit


def data_fingerprint(shards_root: str) -> dict[str, Any]:
    """What a prepare-data output holds: the sha256 of its index (which lists every shard's sha256) and counts."""
    index_uri = storage.join(shards_root, INDEX_FILE)
    raw = storage.read_bytes(index_uri)
    try:
        index = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataError(f"{index_uri}: not valid JSON ({error}); re-run prepare-data") from None
    datasets = index.get("datasets", {})
    return {
        "uri": str(shards_root),
        "index_sha256": hashlib.sha256(raw).hexdigest(),
        "samples": index.get("total"),
        "shards": sum(len(split["shards"]) for splits in datasets.values() for split in splits.values()),
        "splits": {
            f"{name}/{split}": {"samples": entry["count"], "shards": len(entry["shards"])}
            for name, splits in sorted(datasets.items())
            for split, entry in sorted(splits.items())
        },
    }


def lineage_metadata(inputs: dict[str, str], shards_root: str | None = None) -> dict[str, Any]:
    """The lineage block every stage output carries: its input artifacts' URIs, the code, the data."""
    block: dict[str, Any] = {"inputs": dict(inputs), "code_version": code_version()}
    if shards_root is not None:
        block["data"] = data_fingerprint(shards_root)
    return block


@dataclass
class ArtifactNode:
    uri: str
    task: str  # the task's folder relative to the run folder, e.g. for-loop-1-iteration-0/finetune
    name: str  # the output's name, e.g. model
    metadata: dict[str, Any]
    parents: list[str] = field(default_factory=list)  # URIs of the artifacts it was made from

    @property
    def label(self) -> str:
        return f"{self.task}/{self.name}"


@dataclass
class RunLineage:
    root: str
    artifacts: dict[str, ArtifactNode]  # by URI
    parameters: dict[str, dict[str, Any]]  # task -> output parameters

    @property
    def links(self) -> list[tuple[str, str]]:
        return [(parent, node.uri) for node in self.artifacts.values() for parent in node.parents]

    def ordered(self) -> list[ArtifactNode]:
        """Artifacts by depth (sources first), then by label."""
        depth = self.depths()
        return sorted(self.artifacts.values(), key=lambda n: (depth[n.uri], n.label))

    def depths(self) -> dict[str, int]:
        """Longest chain of parents above each artifact (0 for sources)."""
        memo: dict[str, int] = {}

        def visit(uri: str, seen: frozenset[str]) -> int:
            if uri not in memo:
                parents = [p for p in self.artifacts[uri].parents if p not in seen]
                memo[uri] = 1 + max((visit(p, seen | {uri}) for p in parents), default=-1)
            return memo[uri]

        return {uri: visit(uri, frozenset()) for uri in self.artifacts}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _normalize(uri: str) -> str:
    return uri.rstrip("/")


def read_run_lineage(run_dir: str | Path) -> RunLineage:
    """The artifact graph of a local run folder (any folder above the tasks' executor_output.json files)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass a kfp.local run folder, e.g. runs/<timestamp>")
    outputs = sorted(root.rglob(EXECUTOR_OUTPUT))
    if not outputs:
        raise DataError(
            f"no {EXECUTOR_OUTPUT} under {root}; pass the folder of a finished kfp.local run "
            "(e.g. runs/<timestamp> written by `make run`)"
        )
    # Name tasks from the pipeline run's own folder (<pipeline_root>/<pipeline>-<time>/), where kfp.local puts them.
    base = Path(os.path.commonpath([p.parent.parent for p in outputs]))
    artifacts: dict[str, ArtifactNode] = {}
    parameters: dict[str, dict[str, Any]] = {}
    for path in outputs:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not a readable executor output ({error})") from None
        task = str(path.parent.relative_to(base))
        if data.get("parameterValues"):
            parameters[task] = data["parameterValues"]
        for name, entry in sorted(data.get("artifacts", {}).items()):
            for artifact in entry.get("artifacts", []):
                uri = _normalize(artifact["uri"])
                artifacts[uri] = ArtifactNode(uri, task, artifact.get("name") or name, artifact.get("metadata") or {})
    for node in artifacts.values():
        named = {_normalize(s) for s in _strings(node.metadata)}
        node.parents = sorted(uri for uri in named if uri in artifacts and uri != node.uri)
    _add_published_releases(artifacts)
    _link_run_status(artifacts)
    return RunLineage(str(base), artifacts, parameters)


def _add_published_releases(artifacts: dict[str, ArtifactNode]) -> None:
    """The release folder a publish step wrote is an artifact of its own, made from the step's record."""
    for node in list(artifacts.values()):
        where = node.metadata.get("release_uri")
        if isinstance(where, str) and _normalize(where) not in artifacts:
            kept: dict[str, Any] = {
                k: node.metadata[k] for k in ("version", "files", "bytes", "manifest") if k in node.metadata
            }
            artifacts[_normalize(where)] = ArtifactNode(
                _normalize(where), "published", "/".join(Path(where).parts[-2:]), kept, parents=[node.uri]
            )


def _link_run_status(artifacts: dict[str, ArtifactNode]) -> None:
    """The exit handler's run status describes the whole run: it follows the run's last artifacts."""
    for node in artifacts.values():
        if "state" in node.metadata and not node.parents:
            used = {parent for other in artifacts.values() for parent in other.parents}
            node.parents = sorted(
                uri
                for uri, other in artifacts.items()
                if uri not in used and uri != node.uri and "state" not in other.metadata
            )


# Metadata worth a glance in the picture; everything is in the text listing and the tooltips.
_HEADLINE_KEYS = ("code_version", "preset", "task", "steps", "final_loss", "total_samples", "version", "state")


def _flatten(metadata: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in sorted(metadata.items()):
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _short(value: Any, width: int = 72) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _headline(node: ArtifactNode) -> list[str]:
    values = dict(_flatten(node.metadata))
    picked = [(k, values[k]) for k in _HEADLINE_KEYS if k in values]
    metrics = [(k, v) for k, v in values.items() if isinstance(v, float) and k not in _HEADLINE_KEYS]
    return [f"{k}={_short(v, 28)}" for k, v in (picked + metrics)[:3]]


def render_text(lineage: RunLineage) -> str:
    nodes = lineage.ordered()
    lines = [f"Lineage of {lineage.root}: {len(nodes)} artifacts, {len(lineage.links)} links", ""]
    for node in nodes:
        lines.append(node.label)
        lines.append(f"  uri:  {node.uri}")
        parents = [lineage.artifacts[p].label for p in node.parents]
        lines.append(f"  from: {', '.join(parents) if parents else '(no recorded parent)'}")
        for key, value in _flatten(node.metadata):
            lines.append(f"  {key} = {_short(value)}")
        lines.append("")
    for task, values in sorted(lineage.parameters.items()):
        lines.append(f"{task} (parameters)")
        lines.extend(f"  {key} = {_short(value)}" for key, value in sorted(values.items()))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _PAD = 300, 78, 90, 26, 20
_DPI = 72  # Graphviz's plain output is in inches


@dataclass
class _Layout:
    width: float
    height: float
    boxes: dict[str, tuple[float, float]]  # uri -> top-left corner
    edges: dict[tuple[str, str], str]  # (parent, child) -> SVG path data


def _columns_layout(lineage: RunLineage) -> _Layout:
    """Without Graphviz: one column per depth, sources on the left."""
    depth = lineage.depths()
    columns: dict[int, list[ArtifactNode]] = {}
    for node in lineage.ordered():
        columns.setdefault(depth[node.uri], []).append(node)
    boxes: dict[str, tuple[float, float]] = {
        node.uri: (_PAD + col * (_BOX_W + _GAP_X), _PAD + row * (_BOX_H + _GAP_Y))
        for col, nodes in columns.items()
        for row, node in enumerate(nodes)
    }
    edges = {}
    for parent, child in lineage.links:
        (px, py), (cx, cy) = boxes[parent], boxes[child]
        x1, y1, x2, y2 = px + _BOX_W, py + _BOX_H / 2, cx, cy + _BOX_H / 2
        mid = (x1 + x2) / 2
        edges[(parent, child)] = f"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}"
    width = _PAD * 2 + max(len(columns), 1) * (_BOX_W + _GAP_X) - _GAP_X
    height = _PAD * 2 + max((len(n) for n in columns.values()), default=1) * (_BOX_H + _GAP_Y) - _GAP_Y
    return _Layout(width, height, boxes, edges)


def _dot_layout(lineage: RunLineage) -> _Layout | None:
    """Graphviz ``dot`` places the boxes left to right by stage and routes the links; None without it."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    names = {uri: f"n{i}" for i, uri in enumerate(sorted(lineage.artifacts))}
    uris = {name: uri for uri, name in names.items()}
    source = [
        "digraph { rankdir=LR; nodesep=0.3; ranksep=1.0;",
        f'node [shape=box fixedsize=true width={_BOX_W / _DPI:.3f} height={_BOX_H / _DPI:.3f} label=""];',
        *(f"{name};" for name in names.values()),
        *(f"{names[parent]} -> {names[child]};" for parent, child in lineage.links),
        "}",
    ]
    try:
        plain = subprocess.run(
            [dot, "-Tplain"], input="\n".join(source), capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    boxes, edges, height, width = {}, {}, 0.0, 0.0
    for line in plain.splitlines():
        fields = line.split()
        if fields[:1] == ["graph"]:
            width, height = float(fields[2]) * _DPI + 2 * _PAD, float(fields[3]) * _DPI + 2 * _PAD
        elif fields[:1] == ["node"]:
            x, y = float(fields[2]) * _DPI, float(fields[3]) * _DPI
            boxes[uris[fields[1]]] = (_PAD + x - _BOX_W / 2, height - _PAD - y - _BOX_H / 2)
        elif fields[:1] == ["edge"]:
            count = int(fields[3])
            points = [
                (_PAD + float(fields[4 + 2 * i]) * _DPI, height - _PAD - float(fields[5 + 2 * i]) * _DPI)
                for i in range(count)
            ]
            path = f"M {points[0][0]:.1f} {points[0][1]:.1f}" + "".join(
                f" C {a[0]:.1f} {a[1]:.1f}, {b[0]:.1f} {b[1]:.1f}, {c[0]:.1f} {c[1]:.1f}"
                for a, b, c in zip(points[1::3], points[2::3], points[3::3])
            )
            edges[(uris[fields[1]], uris[fields[2]])] = path
    if set(boxes) != set(lineage.artifacts) or set(edges) != set(lineage.links):
        return None  # a layout that lost something is no layout
    return _Layout(width, height, boxes, edges)


_PAGE_SCRIPT = """
const details = JSON.parse(document.getElementById('artifacts').textContent);
for (const box of document.querySelectorAll('g[data-artifact]')) {
  box.addEventListener('click', () => {
    const entry = details[box.dataset.artifact];
    document.getElementById('picked').textContent = entry.label + '  (from: ' + entry.from + ')';
    document.getElementById('metadata').textContent = JSON.stringify(entry.metadata, null, 2);
  });
}
"""


def render_html(lineage: RunLineage) -> str:
    """A self-contained page: the graph (Graphviz's layout where ``dot`` is installed, else columns by
    depth), scaled to the page; hovering a box shows its metadata, clicking it shows it below."""
    layout = _dot_layout(lineage) or _columns_layout(lineage)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
        'preserveAspectRatio="xMinYMin meet" font-family="sans-serif" font-size="12" style="max-height:80vh">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for parent, child in lineage.links:
        svg.append(
            f'<path d="{layout.edges[(parent, child)]}" fill="none" stroke="#555" stroke-width="1.5" '
            'marker-end="url(#arrow)"/>'
        )
    index = {uri: i for i, uri in enumerate(sorted(lineage.artifacts))}
    for uri, (x, y) in sorted(layout.boxes.items()):
        node = lineage.artifacts[uri]
        tooltip = html.escape(json.dumps({"uri": uri, **node.metadata}, indent=1, sort_keys=True))
        fill = "#fdf3e1" if node.task == "published" else "#eef4fb"
        svg.append(
            f'<g data-artifact="{index[uri]}" style="cursor:pointer"><title>{tooltip}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{fill}" '
            f'stroke="#4a78b0"/><text x="{x + 8:.1f}" y="{y + 18:.1f}" font-weight="bold">'
            f"{html.escape(_short(node.label, 40))}</text>"
        )
        for i, line in enumerate(_headline(node)):
            svg.append(f'<text x="{x + 8:.1f}" y="{y + 36 + 15 * i:.1f}" fill="#333">{html.escape(line)}</text>')
        svg.append("</g>")
    svg.append("</svg>")
    details = {
        index[uri]: {
            "label": node.label,
            "metadata": {"uri": uri, **node.metadata},
            "from": ", ".join(lineage.artifacts[p].label for p in node.parents) or "a source",
        }
        for uri, node in lineage.artifacts.items()
    }
    # Inside <script type=application/json>, "</" must not appear: it would end the element.
    payload = json.dumps(details, sort_keys=True).replace("</", "<\\/")
    title = html.escape(f"Lineage of {lineage.root}")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + title + "</title><style>"
        "body{font-family:sans-serif;margin:24px}pre{background:#f6f6f6;padding:8px;font-size:12px;"
        "max-height:40vh;overflow:auto}</style></head><body>"
        f"<h2>{title}</h2><p>{len(lineage.artifacts)} artifacts, {len(lineage.links)} links, left to right by "
        "stage; hover a box for its metadata, click it to show it below.</p>"
        + "".join(svg)
        + "<p id='picked'>(no artifact picked)</p><pre id='metadata'></pre>"
        + f"<script type='application/json' id='artifacts'>{payload}</script>"
        + f"<script>{_PAGE_SCRIPT}</script></body></html>\n"
    )
