"""Long steps say how far they are and how long is left, with or without a bar."""
import logging

import torch

from prunebench.core.progress import Progress
from prunebench.audio.kaldi import FrontEnd
from prunebench.data.features import FeatureStore
from prunebench.data.variant import TaskVariant
from prunebench.tasks.synth_esc import SynthESC


def test_the_log_line_has_the_count_the_rate_and_the_time_left(caplog):
    caplog.set_level(logging.INFO, logger="prunebench.progress")
    with Progress(10, "features demo", enabled=False, unit="clip", log_every_s=0.0) as bar:
        bar.started -= 2.0  # two seconds ago
        for _ in range(4):
            bar.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    assert lines[-1].startswith("features demo: 4/10 clips, 2.0 clips/s, about 3 s left"), lines[-1]


def test_feature_extraction_reports_progress_without_a_bar(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="prunebench.progress")
    monkeypatch.setattr(Progress, "__init__", _logging_every_update(Progress.__init__))
    task = SynthESC(clips_per_fold=2)
    features = FeatureStore(disk_cache=False, progress=False).get(TaskVariant(task), FrontEnd(target_frames=128))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("features ")]
    assert len(lines) == len(features) and f"{len(features)}/{len(features)} clips" in lines[-1]
    assert all(torch.isfinite(f).all() for f in features.fbanks)


def _logging_every_update(init):
    def patched(self, total, desc, enabled=True, unit="it", log_every_s=30.0):
        init(self, total, desc, enabled, unit, 0.0)
    return patched


def test_probe_encoding_reports_progress_without_a_bar(caplog, tmp_path, monkeypatch):
    """A probe's encoding pass (minutes on Whisper base) says how far it is under --no-progress."""
    from prunebench.data.features import frontend_for
    from prunebench.models import build_model
    from prunebench.train.probe import PooledCache

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="prunebench.progress")
    monkeypatch.setattr(Progress, "__init__", _logging_every_update(Progress.__init__))
    task = SynthESC(clips_per_fold=2)
    model = build_model("ast-tiny", num_classes=task.num_classes)
    store = FeatureStore(disk_cache=False, progress=False)
    cache = PooledCache(model, frontend_for(model.config, task), None, TaskVariant(task), store=store,
                        device=torch.device("cpu"), progress=False)
    vectors, _, ids = cache.split(task, "test", 4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("encode test clips of ")]
    assert len(lines) == len(ids) // 4 and f"{len(ids)}/{len(ids)} clips" in lines[-1] and vectors.shape[0] == len(ids)  # a line a batch
