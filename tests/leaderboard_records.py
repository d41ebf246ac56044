"""Small hand-made result records for the leaderboard tests, in the runner's layout.

Every number is chosen by the test, so the tables built from them can be checked exactly."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from prunebench.measure.evaluate import pack_mask
from prunebench.data.examples import example_spectrograms
from prunebench.records.identity import measure_part
from prunebench.records.record import Pair, Record
from prunebench.records.store import result_path

GRID = (8, 8)


def method_block(name: str, keep: Optional[float] = None, **params) -> Dict[str, Any]:
    if keep is not None:
        params["keep_rate"] = keep
    ident = name if not params else name + "-" + "-".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {"name": name, "params": params, "id": ident}


def make_record(method: str = "none", keep: Optional[float] = None, *, model: str = "ast-tiny",
                task: str = "synth-esc", split: str = "fold5", noise: Optional[Tuple[str, float]] = None,
                bucket: Optional[Tuple[float, str]] = None, correct: Sequence[int] = (1, 1, 1, 0),
                pred: Optional[Sequence[int]] = None, metric: str = "accuracy", macs: float = 2.0e9,
                speed: Optional[float] = 100.0, speedup: Optional[float] = 1.0, device: str = "cpu",
                sha: str = "a" * 64, kept: Optional[List[Optional[str]]] = None, examples: bool = False,
                num_classes: int = 4, date: str = "2026-01-02T03:04:05Z", method_name: Optional[str] = None,
                ) -> Dict[str, Any]:
    ids = [f"clip{i}" for i in range(len(correct))]
    corruption = None
    variant = f"{task}/{split}"
    if noise is not None:
        cid = f"{noise[0]}@{noise[1]:g}dB"
        corruption = {"name": noise[0], "params": {"snr_db": noise[1], "snr_mode": "clip"}, "id": cid}
        variant += "+" + cid
    bucket_block = None
    if bucket is not None:
        bid = f"len{bucket[0]:g}s" + ("-native" if bucket[1] == "native" else "")
        bucket_block = {"name": "len", "params": {"seconds": bucket[0], "mode": bucket[1]}, "id": bid}
        variant += "+" + bid
    m = method_block(method, keep)
    if method_name is not None:
        m["name"] = method_name
    value = sum(correct) / len(correct)
    pair = Pair({"name": model, "checkpoint": "ckpt.pt", "checkpoint_sha256": sha,
                 "config": {"num_classes": num_classes, "patch_size": 16, "fstride": 16, "tstride": 16}},
                m, {"name": task, "split": split, "params": {}, "variant": variant, "corruption": corruption,
                    "bucket": bucket_block}, measure_part("float32", device, "float32"), tuple(ids), 0)
    outcome = {
        "metrics": {metric: {"value": value, "ci95": [max(0.0, value - 0.1), min(1.0, value + 0.1)]}},
        "data": {"clips": len(ids), "skipped": []},
        "per_clip": {"ids": ids, "pred": list(pred if pred is not None else correct), "correct": list(correct),
                     "kept_patches": kept},
        "macs": {"per_sample": macs, "units": "MAC", "flops_per_mac": 2, "by_part": {"blocks": macs},
                 "grid": list(GRID)},
        "tokens": {"per_layer": [], "reduction_layers": []},
    }
    if examples:
        gen = torch.Generator().manual_seed(len(variant))
        fbanks = [torch.randn(128, 128, generator=gen) for _ in ids]
        outcome["examples"] = example_spectrograms(ids, fbanks, torch.full((len(ids),), 128), 128)
    provenance = {"git_commit": "abc123", "versions": {"torch": "2.x"}, "device": device, "seed": 0,
                  "config_hash": "cfg1", "date": date, "host": {}}
    record = Record.ok_result(pair, outcome, provenance)
    if speed is not None:
        record = record.with_throughput({"samples_per_s": speed, "spread": 0.05, "batch_size": 8, "repeats": 3,
                                         "device": device, "dtype": "float32", "threads": 2, "speedup_vs_none": speedup})
    return record.to_dict()


def as_old(record: Dict[str, Any], schema: str = "prunebench-result-3") -> Dict[str, Any]:
    """The record as a writer before identities wrote it (no identity, no measure block)."""
    return {**{k: v for k, v in record.items() if k not in ("identity", "measure")}, "schema": schema}


def mask(kept_patches: Sequence[int], num: int = GRID[0] * GRID[1]) -> str:
    m = torch.zeros(num, dtype=torch.bool)
    m[list(kept_patches)] = True
    return pack_mask(m)


def write_records(root: Path, records: Sequence[Dict[str, Any]]) -> Path:
    for r in records:
        path = result_path(root, r["model"]["name"], r["method"]["id"], r["task"]["variant"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
    return root


def record_documents(out: Path, include_failed: bool = False) -> List[Dict[str, Any]]:
    """The records of a results folder as their JSON documents (with `_path`), through the Record
    class, for tests that check what a run stored."""
    from prunebench.records.record import load_results

    return [{**r.to_dict(), "_path": r.path} for r in load_results(out, include_failed)]


def reidentified(record: Dict[str, Any]) -> Dict[str, Any]:
    """A hand-edited record with the identity its edited content gives (as a writer would store it)."""
    return {**record, "identity": Record.from_dict(as_old(record)).identity_from_content().to_dict()}
