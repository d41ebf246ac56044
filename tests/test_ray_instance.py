"""The local Ray instance that the Ray executor starts itself: its workers run at normal priority
and are kept while idle (both measured to matter on a 2-core machine)."""
import os

import pytest

ray = pytest.importorskip("ray")

from prunebench.run.executors.ray_cluster import RayExecutor, warm_task  # noqa: E402


def test_the_local_instance_runs_workers_at_normal_priority():
    if ray.is_initialized():
        pytest.skip("another test's Ray instance is running")
    executor = RayExecutor(num_cpus=2, echo=lambda s: None)
    assert executor.connect(ray) is True
    try:
        assert executor.connect(ray) is False  # already connected: joins, starts nothing
        niceness = ray.get(ray.remote(lambda: os.nice(0)).remote())
        assert niceness == 0  # Ray's default is 15
        # Two warm-up tasks at once start two workers, each with the benchmark imported.
        pids = ray.get([ray.remote(warm_task).options(num_cpus=1).remote() for _ in range(2)])
        assert all(isinstance(p, int) and p != os.getpid() for p in pids)
    finally:
        ray.shutdown()

