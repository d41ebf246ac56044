"""Wall time of a grid under the local and the Ray executor, and Ray's overhead per task.

    python benchmarks/ray_vs_local.py [--config FILE] [--rounds 2] [--workers 2]

Both executors run the same grid (default: the embedded default config) from a cold feature cache
and a cached checkpoint (trained first if needed), alternating local, Ray, local, Ray... in this
one process, so drift of the machine hits both. The Ray time includes starting the local Ray
instance and its workers. Then, on the warm Ray instance with nothing else queued, every
evaluation task is submitted alone: overhead = its round trip minus the time it spent evaluating
(scheduling, fetching features and weights from the object store, rebuilding the model, returning
the records).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()

    from prunebench.core.cache import cache_dir, cache_root
    from prunebench.run.config import load_config
    from prunebench.run.executors import make_executor
    from prunebench.run.runner import Runner
    from prunebench.run.work import Work

    config = load_config(args.config)
    scratch = Path(tempfile.mkdtemp(prefix="ray-vs-local-"))
    quiet = lambda text: None  # noqa: E731

    print("preparing: checkpoints (trained if not cached) and generated data", flush=True)
    work = Work(config, echo=print)
    for mi in range(len(config.models)):
        for ti in range(len(config.tasks)):
            work.prepare(mi, ti)
    # A private cache whose features start cold every run; checkpoints and data are the real ones.
    real = cache_root()
    private = scratch / "cache"
    private.mkdir()
    for part in ("checkpoints", "synth-esc"):
        if (real / part).exists():
            (private / part).symlink_to(real / part)
    os.environ["PRUNEBENCH_CACHE"] = str(private)

    times = {"local": [], "ray": []}
    for round_ in range(args.rounds):
        for name in ("local", "ray"):
            shutil.rmtree(cache_dir("features"))  # cold features for every run
            out = scratch / f"{name}-{round_}"
            options = {"num_cpus": args.workers} if name == "ray" else {}
            executor = make_executor(name, progress=False, echo=quiet, **options)
            started = time.perf_counter()
            summary = Runner(config, out, progress=False, echo=quiet, executor=executor).run()
            seconds = time.perf_counter() - started
            assert not summary.failed, summary.failed
            times[name].append(seconds)
            print(f"round {round_ + 1}: {name:5s} {seconds:7.1f} s ({len(summary.written)} records)", flush=True)
    local, ray_ = statistics.median(times["local"]), statistics.median(times["ray"])
    print(f"median: local {local:.1f} s, ray ({args.workers} workers) {ray_:.1f} s, ratio ray/local {ray_ / local:.2f}")
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} (shared: noisy)")
    overhead_per_task(config, args.workers)
    shutil.rmtree(scratch, ignore_errors=True)


def overhead_per_task(config, workers: int) -> None:
    import ray

    from prunebench.run.executors.ray_cluster import WorkerSetup, evaluate_task, features_task, prepare_task
    from prunebench.run.plan import plan_run

    plan = plan_run(config, tempfile.mkdtemp(prefix="ray-overhead-"))
    ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    try:
        setup = ray.put(WorkerSetup(config.raw, config.hash, (), os.environ.get("PRUNEBENCH_CACHE"), os.getcwd(),
                                    {"name": "ray"}))
        group = plan.groups[0]
        info, weights = ray.remote(prepare_task).options(num_returns=2).remote(setup, group.key)
        features = {u: ray.remote(features_task).remote(setup, info, u) for u in group.units}
        evaluate = ray.remote(evaluate_task).options(num_cpus=1)
        ray.get(list(features.values()))
        ray.get(evaluate.remote(setup, info, weights, group.units[0], features[group.units[0]]))  # warm a worker
        rows = []
        for unit in group.units:
            started = time.perf_counter()
            _, records, stats = ray.get(evaluate.remote(setup, info, weights, unit, features[unit]))
            round_trip = time.perf_counter() - started
            rows.append((round_trip, stats["task_s"], stats["eval_s"], len(records)))
        for round_trip, task_s, eval_s, n in rows:
            print(f"task of {n} pairs: round trip {round_trip:.2f} s, in task {task_s:.2f} s, evaluating {eval_s:.2f} s "
                  f"-> overhead {round_trip - eval_s:.2f} s (Ray {round_trip - task_s:.2f} s, model rebuild and setup "
                  f"{task_s - eval_s:.2f} s)")
        overheads = [r[0] - r[2] for r in rows]
        print(f"overhead per task: median {statistics.median(overheads):.2f} s, max {max(overheads):.2f} s")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
