"""Render a results folder into one self-contained HTML file (inline CSS, JS and SVG, no network).

A pure function of the folder: the same records give the same bytes (no generation time; dates
come from the records' provenance). Every string from a plugin, config or results file is escaped:
Jinja's autoescape for the HTML, markupsafe for the SVG, and the JSON the script reads is embedded
with <, > and & written as \\u escapes, and shown with textContent only.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from prunebench.analysis.effective import effective_robustness
from prunebench.analysis.merge import ResultSet, collect, merge
from prunebench.analysis.robustness import compare
from prunebench.analysis.table import main_table
from prunebench.leaderboard.buckets import bucket_table
from prunebench.leaderboard.effective_view import effective_groups
from prunebench.leaderboard.figures import Y_OPTIONS, pareto_figures, snr_figures
from prunebench.leaderboard.kept_patches import kept_patch_groups
from prunebench.leaderboard.placement_view import placement_groups
from prunebench.leaderboard.plots import colors_for
from prunebench.leaderboard.robustness_view import detail_table, verdict_table
from prunebench.leaderboard.speed_view import ISO_HEADERS, speed_groups
from prunebench.records.record import FULL, Record, RecordLike


def render_leaderboard(results_dir: str | Path, out_file: str | Path,
                       warn: Optional[Callable[[str], None]] = None) -> Path:
    """Write the page for a results folder; `warn` hears of each conflict and failure."""
    result = collect(results_dir)
    if warn is not None:
        for c in result.conflicts:
            warn(f"conflicting records for {' / '.join(c.key)} ({'; '.join(c.differences)}): {', '.join(c.paths)}; "
                 f"none of them is shown")
        for r in result.failed:
            warn(f"failed record {r.path}: shown as a failure")
    html = render_html(result)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_html(result: ResultSet | List[RecordLike]) -> str:
    if not isinstance(result, ResultSet):
        result = merge(list(result))
    return _template().render(**page_context(result))


@functools.lru_cache(maxsize=1)
def _template():
    # Autoescape on for every template and string: everything from results is escaped.
    env = Environment(loader=PackageLoader("prunebench.leaderboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("leaderboard.html.j2")


def page_context(result: ResultSet) -> Dict[str, Any]:
    records = result.records
    method_ids = [r.method.id for r in sorted(records + result.failed, key=lambda r: r.method_sort_key)]
    colors = colors_for(list(dict.fromkeys(method_ids)))
    table = main_table(records, result.failed, result.conflicts)
    comps = compare(records)  # the robustness statistics, as the report computes them
    kept = kept_patch_groups(records, colors)
    buckets = bucket_table(records)
    has_buckets = any(c.key.split(":")[0] != FULL for c in buckets.columns if ":" in c.key)
    pareto = pareto_figures(table, colors)
    shown = {f.option for g in pareto for f in g.figures}
    return {
        "result": result,
        "table": table,
        "verdicts": verdict_table(comps),
        # testbed members (result.testbed) feed this alone
        "effective": effective_groups(effective_robustness(records + result.testbed), colors),
        "speed": speed_groups(records, comps),
        "iso_headers": ISO_HEADERS,
        "details": detail_table(comps),
        "pareto": pareto,
        "y_options": [o for o in Y_OPTIONS if o[0] in shown],
        "snr": snr_figures(table, records, colors),
        "buckets": buckets,
        "has_buckets": has_buckets,
        "kept": kept,
        "kept_json": embed_json({g.key: g.data for g in kept}),
        "tokens": placement_groups(records, colors),
        "tasks": sorted({r.task for r in table.rows}),
        "models": sorted({r.model for r in table.rows}),
        "methods": sorted({r.method for r in table.rows}),
        "failures": [(r.key, r.failure.text, r.path or "") for r in result.failed],
        "provenance": provenance(records + result.failed),
    }


def embed_json(data: Any) -> Markup:
    """JSON safe inside a <script> element: no '<', '>' or '&' survives literally."""
    text = json.dumps(data, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@dataclass
class RunEnvironment:
    commit: str
    device: str
    versions: str
    seed: Any
    config: str
    records: int
    first: str
    last: str


def provenance(records: List[Record]) -> List[RunEnvironment]:
    """One line per distinct (commit, device, versions, seed, config): where the numbers came from."""
    seen: Dict[tuple, RunEnvironment] = {}
    for r in records:
        p = r.provenance
        versions = ", ".join(f"{k} {v}" for k, v in sorted((p.get("versions") or {}).items()))
        host = p.get("host") or {}
        device = str(p.get("device") or "unknown")
        if host.get("machine"):
            device += f" ({host.get('machine')}, {host.get('cpus')} cpus, {host.get('threads')} threads)"
        key = (p.get("git_commit"), device, versions, p.get("seed"), p.get("config_hash"))
        date = str(p.get("date") or "")
        env = seen.get(key)
        if env is None:
            env = seen[key] = RunEnvironment(str(p.get("git_commit") or "unknown"), device, versions or "unknown",
                                           p.get("seed"), str(p.get("config_hash") or "unknown"), 0, date, date)
        env.records += 1
        if date:
            env.first = min(env.first or date, date)
            env.last = max(env.last, date)
    return sorted(seen.values(), key=lambda e: (e.first, e.commit, e.device))
