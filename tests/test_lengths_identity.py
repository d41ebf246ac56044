"""Record identity of the batching strategy and of clip lengths: new settings get keys of their
own, records without them (older ones) keep theirs."""
from __future__ import annotations

from prunebench.records.identity import identity_of, measure_part


def test_identity_keeps_old_keys_and_names_new_settings():
    model, method = {"name": "m", "checkpoint_sha256": "x"}, {"name": "none", "params": {}}
    task = {"name": "esc50", "split": "fold5", "params": {}}
    old = identity_of(model, method, task, measure_part("float32", "cpu", "float32"), ["a"], 0)
    assert "lengths" not in old.parts and "batching" not in old.parts["measure"]
    assert measure_part("float32", "cpu", "float32", batching="pad-fixed") == measure_part("float32", "cpu", "float32")
    sorted_ = identity_of(model, method, task, measure_part("float32", "cpu", "float32", batching="sorted"), ["a"], 0)
    trimmed = identity_of(model, method, {**task, "lengths": {"id": "trim", "params": {"trim": True}}},
                          measure_part("float32", "cpu", "float32"), ["a"], 0)
    assert len({old.key, sorted_.key, trimmed.key}) == 3
    assert old.differences(sorted_) == ['measure.batching: null -> "sorted"']
