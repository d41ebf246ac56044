import pytest

from prunebench.run.config import expand, load_config, parse_config
from prunebench.core.errors import ConfigError


def test_default_config_expands_into_the_default_grid():
    cfg = load_config()
    assert [m.id for m in cfg.methods] == ["none", "topk-keep_rate=1.0", "topk-keep_rate=0.9", "topk-keep_rate=0.7", "topk-keep_rate=0.5"]
    assert [v.id for v in cfg.tasks[0].variants] == [
        "synth-esc/fold5", "synth-esc/fold5+white@20dB", "synth-esc/fold5+white@10dB", "synth-esc/fold5+white@0dB"]


def test_lists_expand_and_list_of_lists_is_a_value():
    assert expand({"name": "topk", "keep_rate": [0.5, 0.7], "layers": [[1, 2]]}) == [
        {"name": "topk", "keep_rate": 0.5, "layers": [1, 2]}, {"name": "topk", "keep_rate": 0.7, "layers": [1, 2]}]


BASE = {"models": ["ast-tiny"], "tasks": [{"name": "synth-esc"}], "methods": ["none"]}


@pytest.mark.parametrize("patch, message", [
    ({"methds": []}, "unknown key 'methds' .*did you mean 'methods'"),
    ({"methods": [{"name": "topk", "keep_rat": 0.5}]}, "no parameter 'keep_rat'.*did you mean 'keep_rate'"),
    ({"methods": [{"name": "topk", "keep_rate": 1.5}]}, "keep_rate must be a number in \\(0, 1\\]"),
    ({"methods": [{"name": "topk", "keep_rate": 0}]}, "keep_rate"),
    ({"methods": [{"name": "tpok"}]}, "unknown method 'tpok'.*did you mean 'topk'"),
    ({"tasks": [{"name": "synth-esc", "corruptions": [{"name": "white", "snr_db": 1000}]}]}, "snr_db"),
    ({"measure": {"batchsize": 3}}, "did you mean 'batch_size'"),
    ({"methods": ["none", "none"]}, "more than once"),
    ({"seed": "zero"}, "seed must be an integer"),
    ({"measure": {"feature_dtype": "int8"}}, "feature_dtype must be one of auto, float32, float16, got 'int8'"),
])
def test_bad_configs_name_the_key(patch, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **patch})


def test_malformed_yaml_gives_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nmodels: [ast-tiny\n")
    with pytest.raises(ConfigError, match="bad.yaml line"):
        load_config(bad)


@pytest.mark.parametrize("measure, stored", [
    ({}, "float32"), ({"dtype": "bfloat16"}, "bfloat16"), ({"feature_dtype": "float16"}, "float16"),
    ({"dtype": "float16", "feature_dtype": "float32"}, "float32"),
])
def test_the_feature_cache_stores_as_the_model_runs_unless_told(measure, stored):
    from prunebench.run.config import feature_storage

    assert feature_storage(parse_config({**BASE, "measure": measure}).measure) == stored
