"""Render a results folder into one self-contained HTML file (inline CSS and JS, no network)."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Dict, List

from jinja2 import Environment, PackageLoader, select_autoescape

from benchmark.results import load_records
from benchmark.summary import pivot


def render_leaderboard(results_dir: str | Path, out_file: str | Path) -> Path:
    records = load_records(results_dir, include_failed=True)
    html = render_html(records)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_html(records: List[Dict[str, Any]]) -> str:
    # Autoescape on: every string from a plugin, config or results file is escaped.
    env = Environment(loader=PackageLoader("benchmark.leaderboard", "templates"), autoescape=select_autoescape(default=True))
    headers, table = pivot(records)
    provenance = _provenance(records)
    failures = [{"model": r["model"]["name"], "method": r["method"]["id"], "variant": r["task"]["variant"],
                 "stage": r["error"]["stage"], "error": r["error"]["message"].splitlines()[0]}
                for r in records if r.get("status") == "failed"]
    return env.get_template("leaderboard.html.j2").render(
        headers=headers, rows=table, count=len(records) - len(failures), provenance=provenance, failures=failures,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _provenance(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    seen = {}
    for r in records:
        p = r["provenance"]
        key = (p.get("git_commit"), p.get("device"), p.get("config_hash"))
        if key not in seen:
            seen[key] = {"commit": p.get("git_commit") or "unknown", "device": p.get("device"),
                         "versions": ", ".join(f"{k} {v}" for k, v in sorted(p.get("versions", {}).items())),
                         "config": p.get("config_hash"), "seed": p.get("seed")}
    return list(seen.values())
