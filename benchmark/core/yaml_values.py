"""How prunebench reads YAML: config files, tracks, `--set KEY=VALUE` and method specs alike."""
from __future__ import annotations

import re
from typing import Any

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error, not a silent
    overwrite (a second `methods:` would drop the first without a word), and that `5e-4` is a
    number, as YAML 1.2 and every researcher read it (PyYAML's YAML 1.1 wants `5.0e-4`)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.2's float: an exponent needs no dot and no sign (`1e-4`, `2E5`).
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def load_yaml_value(text: str) -> Any:
    """One YAML value as a config file reads it (`--set lr=5e-4` gives the float 0.0005)."""
    return yaml.load(text, Loader=UniqueKeyLoader)
