"""`prunebench`: the command line, a thin face over the Python API."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from prunebench.core.errors import PrunebenchError


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "no_progress", False):
        from prunebench.core.progress import show_lines

        show_lines()
    from prunebench.core.plugins import load_plugins

    failures = load_plugins(getattr(args, "plugins", None) or [])
    for message in failures:
        _warn(message)
    try:
        return args.func(args) or 0
    except PrunebenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished records are kept; rerun the same command to resume", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunebench", description="Token pruning in audio transformers, clean and under noise.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_list, _add_run, _add_train, _add_profile, _add_tune, _add_report, _add_validate_method, _add_leaderboard,
                _add_tracks, _add_submit, _add_verify):
        add(sub)
    return parser


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="what is registered, one line each")
    p.add_argument("--plugins", action="append", metavar="FILE", help="also load this plugin file")
    p.set_defaults(func=cmd_list)


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="evaluate every (model, task variant, method) pair of a config")
    p.add_argument("--config", help="YAML run configuration (default: the embedded default)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--overwrite", action="store_true", help="recompute records that already exist")
    p.add_argument("--plugins", action="append", metavar="FILE", help="load a plugin file (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--executor", default="local", choices=("local", "ray"),
                   help="where the pairs run: this process (default) or a Ray cluster")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start a local Ray instance)")
    p.add_argument("--methods-per-task", type=int, default=0, metavar="N",
                   help="Ray: at most N methods per Ray task (default: all pending methods of a task variant)")
    p.add_argument("--max-retries", type=int, default=3, metavar="N",
                   help="Ray: retries of a task whose worker or node was lost (default: 3)")
    p.set_defaults(func=cmd_run)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model on a task's training folds; save a checkpoint")
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--root", help="dataset root (esc50: folder with audio/ and meta/)")
    p.add_argument("--split", default=None, help="held-out split, e.g. fold5 (training uses the other folds)")
    p.add_argument("--folds", help="cross-validation: held-out folds, e.g. 1,2,3,4,5 or all (= --split all); one checkpoint each")
    p.add_argument("--init", help="fine-tune from this checkpoint: file, folder, Hub id or zoo name (prunebench list)")
    p.add_argument("--recipe", help="auto (default: scratch; with --init: probe for Whisper, ast-esc50 / ast-as20k by task), "
                                    "scratch, scratch-esc50, ast-esc50, ast-as20k, probe (linear head on the frozen encoder), "
                                    "finetune (the encoder too), vit-esc50, vit-esc50-v2, vit-esc50-v3 (the image-pretrained "
                                    "ViT on ESC-50: docs/data-and-checkpoints.md)")
    p.add_argument("--prune", metavar="SPEC", help="pruning-aware training, e.g. topk:keep_rate=0.5 (keep rate annealed from 1; "
                                                  "probe: the head fitted on the pruned encoder's output)")
    p.add_argument("--frames", type=int, help="input length to train at (ast-esc50: 512)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training setting, e.g. --set full_length_epochs=3 (see `train:` in the README)")
    p.add_argument("--out", help="checkpoint file (FILE.pt; {split} is replaced by the fold), or a folder: names carry "
                                 "the config and content hashes (default: the cache folder)")
    p.add_argument("--overwrite", action="store_true", help="train again even if this very training finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--plugins", action="append", metavar="FILE")
    p.set_defaults(func=cmd_train)


def _add_profile(sub) -> None:
    p = sub.add_parser("profile", help="MACs, measured throughput and peak memory of methods, without accuracy")
    p.add_argument("--model", default="ast-tiny")
    p.add_argument("--method", action="append", default=[], metavar="SPEC", help="name or name:key=value,... (repeatable; none is always the baseline)")
    p.add_argument("--bucket", action="append", default=[], metavar="SECONDS[:pad|native]",
                   help="length bucket to measure (repeatable; default mode pad); default: the nominal length")
    p.add_argument("--seconds", type=float, help="shorthand for --bucket SECONDS:native")
    p.add_argument("--batch-size", type=int, default=32, help="fixed batch; halved for all methods on out of memory")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="float32, or autocast to bf16/fp16")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per method (median and spread)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per method first")
    p.add_argument("--min-time", type=float, default=0.2, metavar="SECONDS", help="shortest timed repeat (steps are added)")
    p.add_argument("--attention", default="auto", choices=["auto", "flash", "efficient", "cudnn", "math"],
                   help="SDPA backend for all methods (auto: the fastest every method runs on)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND", help="torch.compile each method (default backend inductor)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    _add_execution(p)
    p.add_argument("--no-memory", action="store_true", help="skip peak memory (on CPU one fresh process per method)")
    p.add_argument("--runs", type=int, default=1, help="repeat the whole measurement and report agreement (repeatability)")
    p.add_argument("--check-macs", action="store_true", help="instead of timing: analytic MACs against FlopCounterMode and ptflops (aten), math attention")
    p.add_argument("--batching", action="append", default=[], metavar="STRATEGY",
                   help="instead of one input shape: clips/s per batching strategy (pad-fixed, pad-batch, sorted, native; "
                        "repeatable) over clips of lengths drawn from --lengths")
    p.add_argument("--lengths", type=float, nargs=2, default=(1.0, 5.0), metavar=("LO", "HI"),
                   help="with --batching: clip lengths drawn uniformly in [LO, HI] seconds, seeded per clip (default 1 5)")
    p.add_argument("--clips", type=int, default=256, help="with --batching: clips per pass (default 256)")
    p.add_argument("--json", help="also write the rows as JSON")
    p.add_argument("--plugins", action="append", metavar="FILE")
    p.set_defaults(func=cmd_profile)


def _add_tune(sub) -> None:
    p = sub.add_parser("tune", help="the keep rate at which a method reaches a measured speedup against none")
    p.add_argument("--model", default="ast-tiny")
    p.add_argument("--method", required=True, metavar="SPEC", help="name or name:key=value,... (keep_rate is what is tuned)")
    p.add_argument("--target-speedup", type=float, required=True, action="append", metavar="S",
                   help="measured speedup to reach, e.g. 1.5 (repeatable)")
    p.add_argument("--bucket", default=None, metavar="SECONDS[:pad|native]", help="input length (default: the nominal one)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    p.add_argument("--tolerance", type=float, default=0.05, help="accept a measured speedup within this share of the target")
    p.add_argument("--max-measurements", type=int, default=6)
    _add_execution(p)
    p.add_argument("--plugins", action="append", metavar="FILE")
    p.set_defaults(func=cmd_tune)


def _add_execution(p) -> None:
    p.add_argument("--execution", default="auto", choices=["auto", "fast", "eager"],
                   help="CPU inference path: fast (oneDNN, packed weights, fused GELU), eager (PyTorch's modules); "
                        "auto: fast on a CPU (docs/cpu-speed.md)")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="the research question answered in plain text for a results folder")
    p.add_argument("results")
    p.add_argument("-o", "--output", default=None, help="also write the report to this text file")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument("--plugins", action="append", metavar="FILE", help="load a plugin file (a metric the records use)")
    p.set_defaults(func=cmd_report)


def _add_validate_method(sub) -> None:
    p = sub.add_parser("validate-method", help="check a method on a tiny random model: identity, schedule, MACs, determinism")
    p.add_argument("method", metavar="NAME", help="method name, or a SPEC name:key=value,... to check that configuration only")
    p.add_argument("--model", default="ast-tiny",
                   help="model family to check on, as a tiny random model of its structure (default ast-tiny; e.g. whisper-tiny)")
    p.add_argument("--plugins", action="append", metavar="FILE", help="also load this plugin file")
    p.set_defaults(func=cmd_validate_method)


def _add_leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="render a results folder, or (no folder) the published board, into one HTML file; "
                                           "--add a verified submission bundle to the store")
    p.add_argument("results", nargs="?", help="a results folder (default: the published board of the results store)")
    p.add_argument("-o", "--output", default=None,
                   help="HTML file (default: RESULTS/leaderboard.html; the published board: leaderboard.html)")
    p.add_argument("--store", default=None, help="the results store (default: the repository's results-store/, or $PRUNEBENCH_STORE)")
    p.add_argument("--add", metavar="BUNDLE", help="verify a submission bundle and merge it into the store")
    p.add_argument("--division", default="closed", choices=("closed", "open"),
                   help="with --add: open waives the equality with the published none (another checkpoint) and marks the rows open")
    p.add_argument("--publish", metavar="RESULTS", help="the project's own complete run of --track as the track's published entry")
    p.add_argument("--track", help="with --publish: the track the run is of")
    p.add_argument("--partial", action="store_true", help="with --publish: a run still missing pairs (the entry lists them)")
    p.add_argument("--root", help="with --add: the dataset's folder on this machine (default: the track's)")
    p.add_argument("--plugins", action="append", metavar="FILE", help="load a plugin file (a metric the records use)")
    p.add_argument("--publish-aware", metavar="OFF_THE_SHELF",
                   help="a pruning-aware study into the store: the off-the-shelf results folder (docs/pruning-aware.md)")
    p.add_argument("--aware", nargs="+", metavar="RESULTS", help="with --publish-aware: the pruning-aware folders, one method each")
    p.add_argument("--control", metavar="RESULTS", help="with --publish-aware: the unpruned model given the same extra training")
    p.add_argument("--study", help="with --publish-aware: the study's name (its folder)")
    p.add_argument("--title", help="with --publish-aware: the study's heading on the board")
    p.add_argument("--about", default="", help="with --publish-aware: one or two sentences on the board")
    p.add_argument("--testbed-track", metavar="TRACK",
                   help="with --publish-aware: read the testbed of this track's published entry (the same frozen encoder) in place")
    p.set_defaults(func=cmd_leaderboard)


def _add_tracks(sub) -> None:
    p = sub.add_parser("tracks", help="the shipped tracks (versioned protocols), with their expected runtime on a 2-core CPU")
    p.set_defaults(func=cmd_tracks)


def _add_submit(sub) -> None:
    p = sub.add_parser("submit", help="run a track for one method and none, timed on this machine; write a bundle and verify it")
    p.add_argument("--plugins", action="append", metavar="FILE", required=True, help="the plugin file registering the method")
    p.add_argument("--method", required=True, metavar="SPEC", help="name or name:key=value,... (default: the track's operating points)")
    p.add_argument("--track", required=True, help="a track (prunebench tracks) or a track file")
    p.add_argument("--out", required=True, help="the bundle's folder (a rerun resumes it)")
    p.add_argument("--root", help="the dataset's folder on this machine (default: the track's)")
    p.add_argument("--store", default=None, help="the results store verify compares none with (default: results-store/)")
    p.add_argument("--division", default="closed", choices=("closed", "open"), help="the division verify checks for")
    p.add_argument("--overwrite", action="store_true", help="recompute every pair")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_submit)


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="every check of a submission bundle with its verdict; exit 0 when it verifies")
    p.add_argument("bundle")
    p.add_argument("--division", default="closed", choices=("closed", "open"),
                   help="open: waive the equality with the published none (another checkpoint, fine-tuned weights)")
    p.add_argument("--store", default=None, help="the results store holding the track's published run (default: results-store/)")
    p.add_argument("--root", help="the dataset's folder on this machine (default: the track's)")
    p.add_argument("--sample", type=int, default=8, help="clips rerun per sampled record (default 8)")
    p.set_defaults(func=cmd_verify)


def cmd_list(args) -> int:
    from prunebench.models.zoo import ZOO
    from prunebench.core.registry import ALL_REGISTRIES

    for kind, registry in ALL_REGISTRIES.items():
        print(f"{kind}s:")
        for entry in registry.entries():
            print(f"  {entry.name:<22} {entry.description}")
    print("checkpoints (the name works as checkpoint: or --init):")
    for entry in ZOO.values():
        source = f"Hub {', '.join(entry.hub_ids)}" if entry.hub_ids else f"download {entry.original}"
        if entry.installed_path() is not None:  # with the folders of a split file's later parts
            folders = (entry.installed_path(),) + entry.installed_parts_folders()
            source = f"installed at {' + '.join(str(f) for f in folders)}; " + source
        print(f"  {entry.name:<25} {entry.model:<14} {entry.about}; {source}; licence {entry.licence}")
    return 0


def cmd_run(args) -> int:
    from prunebench.run.config import load_config
    from prunebench.run.runner import Runner
    from prunebench.run.executors import make_executor
    from prunebench.leaderboard import render_leaderboard
    from prunebench.analysis.summary import failure_lines, summary_table

    config = load_config(args.config)
    progress = not args.no_progress
    options = {}
    if args.executor == "ray":
        options = {"address": args.address, "methods_per_task": args.methods_per_task, "max_retries": args.max_retries}
    executor = make_executor(args.executor, progress=progress, **options)
    runner = Runner(config, args.out, overwrite=args.overwrite, progress=progress, executor=executor)
    summary = runner.run()
    if summary.records:
        print(summary_table(summary.records))
    print(f"{len(summary.written) - len(summary.failed)} records written, {len(summary.skipped)} already present, "
          f"{len(summary.failed)} failed, in {summary.seconds:.0f} s; results in {args.out}/")
    if summary.records or summary.failed_records or summary.testbed.written:
        page = render_leaderboard(args.out, Path(args.out) / "leaderboard.html",
                                  warn=_warn)
        print(f"leaderboard: {page}")
    if summary.all_failed:
        for line in failure_lines(summary.all_failed):
            print(f"FAILED {line}", file=sys.stderr)
        print(f"{len(summary.all_failed)} pairs failed: their records in {args.out}/ hold the error and traceback; "
              f"rerun the same command to retry them", file=sys.stderr)
        return 2 if summary.only_input_errors else 1
    return 0


def cmd_train(args) -> int:
    from prunebench.core.yaml_values import load_yaml_value

    from prunebench.core.errors import ConfigError
    from prunebench.train.recipes import TRAIN_DEFAULTS, resolve_train
    from prunebench.core.registry import TASKS
    from prunebench.train.loop import train_model

    user = {key: value for key, value in (
        ("init", args.init), ("recipe", args.recipe), ("prune", args.prune), ("frames", args.frames),
        ("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size), ("device", args.device),
    ) if value is not None}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(TRAIN_DEFAULTS)}")
        user[key] = load_yaml_value(value)
    resolve_train(user, "--set")  # unknown keys and bad values fail before any work
    root = {"root": args.root} if args.root else {}
    if args.folds and args.folds.strip() != "all":
        splits = _folds(args.folds)
    elif args.folds or args.split == "all":
        splits = TASKS.get(args.task)(**root).cross_validation_splits()  # the task's own folds
    else:
        splits = [args.split]
    pattern = args.out or ""
    if len(splits) > 1 and Path(pattern).suffix and "{split}" not in pattern:
        raise ConfigError(f"--out {pattern}: several folds need a folder (names by hashes) or a {{split}} pattern")
    scores = []
    for split in splits:
        task = TASKS.get(args.task)(**root, **({"split": split} if split else {}))  # no --split: the task's default
        out = Path(pattern.replace("{split}", task.split)).expanduser() if pattern else None
        path, meta = train_model(args.model, task, user, out=out, overwrite=args.overwrite, progress=not args.no_progress)
        scores.append(meta["test_score"])
        metric = meta["test_metric"]
        line = f"{task.split}: checkpoint {path} (sha256 {meta['sha256'][:12]}); {metric} {_score(metric, meta['test_score'])}"
        if meta.get("prune"):
            line += f", pruned at keep rate {meta['prune']['target_keep_rate']} {_score(metric, meta['prune']['test_score'])}"
        if meta.get("reused"):
            line += "; already trained, reused (--overwrite trains again)"
        elif meta.get("probe"):
            line += (f"; probe on {meta['train_clips']} clips: encoded in {meta['encode_seconds']:.0f} s "
                     f"({meta['pooled_computed']} clips computed, {meta['pooled_reused']} cached), head fitted in "
                     f"{meta['fit_seconds']:.1f} s")
        else:
            line += (f"; {meta['train_clips']} clips x {len(meta['epoch_seconds'])} epochs in {meta['train_seconds']:.0f} s "
                     f"({meta['samples_per_s']} samples/s on {meta['device']})")
        print(line)
    if len(scores) > 1:
        import statistics

        print(f"mean over {len(scores)} folds: {_score(metric, statistics.mean(scores))} "
              f"(sd {_score(metric, statistics.stdev(scores))})")
    return 0


def _folds(text: str) -> List[str]:
    from prunebench.core.errors import ConfigError

    try:
        return [f"fold{int(f)}" for f in text.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--folds {text!r}: expected comma-separated fold numbers (1,2,3) or all") from None


def _score(metric: str, value: float) -> str:
    from prunebench.metrics import get_metric

    return get_metric(metric).format(value)


def cmd_profile(args) -> int:
    import json

    if args.check_macs:
        return _check_macs(args)
    if args.batching:
        return _profile_strategies(args)
    from prunebench.measure.profile import format_profile, format_repeatability, machine_description, profile, repeatable

    rows = profile(args.model, args.method, seconds=args.seconds, batch_size=args.batch_size, device=args.device,
                   dtype=args.dtype, repeats=args.repeats, warmup=args.warmup, buckets=args.bucket,
                   min_repeat_s=args.min_time, attention=args.attention, compile_backend=args.compile,
                   memory=not args.no_memory, threads=args.threads, runs=args.runs, plugin_files=args.plugins or [],
                   execution=args.execution)
    print(f"machine: {machine_description(rows[0]['device'])}")
    print(format_profile(rows))
    if args.runs > 1:
        print()
        print(format_repeatability(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0 if repeatable(rows) else 1


def _profile_strategies(args) -> int:
    import json

    from prunebench.data.batching import check_strategy
    from prunebench.measure.profile import machine_description, profile_strategies
    from prunebench.measure.strategies import format_strategies
    from prunebench.tasks.lengths import ClipLengths

    for name in args.batching:
        check_strategy(name, "--batching")
    draw = ClipLengths(uniform=list(args.lengths))
    seconds = [draw.drawn_seconds(f"clip{i}") for i in range(args.clips)]
    results = profile_strategies(args.model, args.method, args.batching, seconds, batch_size=args.batch_size,
                                 device=args.device, dtype=args.dtype, repeats=args.repeats, warmup=args.warmup,
                                 threads=args.threads, execution=args.execution)
    first = next(r for r in results.values() if r.frames)  # pad-fixed, always measured
    print(f"machine: {machine_description(args.device if args.device != 'auto' else 'cpu')}")
    print(f"{args.model}: {args.clips} clips of {args.lengths[0]:g}-{args.lengths[1]:g} s (uniform, seeded per clip), "
          f"batch {first.batch_size}, pad-fixed to {first.frames} frames")
    print(format_strategies(results))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results.values()], indent=1), encoding="utf-8")
    return 0


def cmd_tune(args) -> int:
    import torch

    from prunebench.measure.profile import inference_model, input_shapes, model_frontend
    from prunebench.measure.throughput import TimingSettings
    from prunebench.measure.tune import tune
    from prunebench.method_api import parse_method_spec

    torch.manual_seed(0)
    model = inference_model(args.model, args.device, args.dtype, args.execution)
    name, params = parse_method_spec(args.method)
    params.pop("keep_rate", None)
    shape = input_shapes(model.config.target_frames, [args.bucket] if args.bucket else [], None, model_frontend(model))[0]
    settings = TimingSettings(batch_size=args.batch_size, device=args.device, dtype=args.dtype, repeats=args.repeats)
    print(f"{args.model}, {shape.label}: {shape.frames} frames, batch {args.batch_size}, {args.device}, {args.dtype}")
    reached = True
    for target in args.target_speedup:
        result = tune(model, name, params, target, shape, settings, tolerance=args.tolerance,
                      max_measurements=args.max_measurements)
        tried = ", ".join(f"{s['keep_rate']:.3f}: {s['speedup']:.2f}x" for s in result.steps)
        print(f"target {target:g}x: {result.spec}  measured {result.speedup:.2f}x (MAC ratio {result.mac_ratio:.2f}; "
              f"tried {tried})")
        reached &= result.reached
    return 0 if reached else 1


def _check_macs(args) -> int:
    import json

    import torch

    from prunebench.measure.counters import check_macs, format_mac_check
    from prunebench.models import build_model
    from prunebench.measure.profile import build_methods, input_shapes, model_frontend

    torch.manual_seed(0)
    model = build_model(args.model).eval()
    methods = build_methods(args.method)
    results = []
    for shape in input_shapes(model.config.target_frames, args.bucket, args.seconds, model_frontend(model)):
        checks = check_macs(model, methods, shape)
        print(f"{args.model}, {shape.label}: {shape.frames} frames ({shape.valid_frames} real), MACs per sample")
        print(format_mac_check(checks))
        results += [{**c.to_dict(), **shape.describe()} for c in checks]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0 if all(r["ok"] for r in results) else 1


def cmd_report(args) -> int:
    from prunebench.analysis.report import report_folder

    text = report_folder(args.results, seed=args.seed)
    print(text, end="")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def cmd_validate_method(args) -> int:
    from prunebench.method_api import parse_method_spec
    from prunebench.run.validate import format_checks, validate_method

    from prunebench.run.validate import tiny_model

    name, params = parse_method_spec(args.method)
    checks = validate_method(name, params if ":" in args.method else None, model=tiny_model(model_name=args.model))
    print(format_checks(checks))
    failed = [c for c in checks if not c.passed]
    print(f"{name}: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def cmd_leaderboard(args) -> int:
    from prunebench.core.errors import ConfigError

    store = _store(args.store)
    if args.add:
        return _add_bundle(args, store)
    if args.publish_aware:
        from prunebench.records.studies import Study
        from prunebench.submit.store import publish_study

        if not (args.aware and args.study and args.title):
            raise ConfigError("--publish-aware needs --aware, --study and --title")
        study = Study(args.study, args.title, args.about, [], False, args.testbed_track)
        folder = publish_study(study, Path(args.publish_aware), [Path(a) for a in args.aware], store,
                               Path(args.control) if args.control else None)
        print(f"published the pruning-aware study {args.study} as {folder}")
        return 0
    if args.publish:
        from prunebench.submit.store import publish
        from prunebench.submit.system import system_description

        if not args.track:
            raise ConfigError("--publish needs --track: the track the run is of")
        entry = publish(args.track, Path(args.publish), store, system_description("auto", "float32"), partial=args.partial)
        print(f"published {args.publish} as {entry}")
        return 0
    if args.results is None:
        import time

        from prunebench.leaderboard.board import render_board

        started = time.perf_counter()
        page = render_board(store, args.output or "leaderboard.html")
        print(f"published board of {store}: {page} ({time.perf_counter() - started:.1f} s)")
        return 0
    from prunebench.leaderboard import render_leaderboard

    out = args.output or str(Path(args.results) / "leaderboard.html")
    page = render_leaderboard(args.results, out, warn=_warn)
    print(f"leaderboard: {page}")
    return 0


def _store(path: Optional[str]) -> Path:
    from prunebench.leaderboard.board import STORE

    return Path(path) if path else STORE


def _add_bundle(args, store: Path) -> int:
    from prunebench.submit.store import Refused, add_bundle
    from prunebench.submit.verify import VerifySettings

    settings = VerifySettings(Path(args.add), store, division=args.division, root=args.root, stop_at_failure=True)
    try:
        entry, _ = add_bundle(settings, echo=lambda line: print(line) if line.startswith("removed ") else None)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"added {args.add} to the store as {entry} ({args.division} division)")
    return 0


def cmd_tracks(args) -> int:
    from prunebench.tracks.track import all_tracks

    for track in all_tracks():
        print(f"{track.name} (version {track.version}, protocol {track.protocol}): {track.about}")
        print(f"    expected on a 2-core CPU: {track.runtime_2cpu}")
    return 0


def cmd_submit(args) -> int:
    import time

    from prunebench.submit.submit import SubmitSettings, submit

    started = time.perf_counter()
    settings = SubmitSettings(args.track, Path(args.plugins[-1]), args.method, Path(args.out), root=args.root,
                              overwrite=args.overwrite, progress=not args.no_progress)
    summary = submit(settings)
    print(f"{len(summary.written) - len(summary.failed)} records written, {len(summary.skipped)} already present, "
          f"{len(summary.failed)} failed, in {time.perf_counter() - started:.0f} s; bundle {args.out}/")
    print(f"verify {args.out}:")
    return _verify(Path(args.out), _store(args.store), args.division, args.root, 8)


def cmd_verify(args) -> int:
    return _verify(Path(args.bundle), _store(args.store), args.division, args.root, args.sample)


def _verify(bundle: Path, store: Path, division: str, root: Optional[str], sample: int) -> int:
    from prunebench.submit.verify import VerifySettings, verified, verify

    verdicts = verify(VerifySettings(bundle, store, division=division, sample=sample, root=root), echo=print)
    ok = verified(verdicts)
    print(f"{bundle}: {'verifies' if ok else 'does not verify'} ({sum(not v.failed for v in verdicts)} of "
          f"{len(verdicts)} checks passed or waived)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
