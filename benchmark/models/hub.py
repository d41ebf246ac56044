"""Where a checkpoint argument points: a local file or folder, or a Hugging Face Hub repository.

A Hub id is `owner/name` or `owner/name@revision`. Downloads go through huggingface_hub, so its
cache (HF_HOME, HF_HUB_CACHE) is used and offline mode (HF_HUB_OFFLINE=1) is respected: offline,
a repository already in the cache loads, any other gives one line naming the id.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from prunebench.core.errors import DataError

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")
# Only what a model needs: configs and weights (never both weight formats when safetensors exist).
CONFIG_PATTERNS = ["*.json"]
SAFETENSORS_PATTERNS = ["*.safetensors"]
PICKLE_PATTERNS = ["*.pth", "*.pt", "*.bin"]


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    """The local path of `checkpoint`: itself when it exists, else a zoo name's folder in its
    installed package or the Hub snapshot folder of its Hub ids (tried in turn), or of a Hub id."""
    from prunebench.models.zoo import ZOO, zoo_hub_ids

    path = Path(checkpoint).expanduser()
    if path.exists():
        return path
    entry = ZOO.get(str(checkpoint))
    installed = entry.installed_path() if entry is not None else None
    if installed is not None:
        return installed
    hub_ids = zoo_hub_ids(str(checkpoint))
    for i, hub_id in enumerate(hub_ids):
        try:
            return hub_snapshot(hub_id, None, f"{checkpoint} ({hub_id})")
        except DataError:
            if i + 1 == len(hub_ids):
                raise
    match = HUB_ID.match(str(checkpoint))
    if match is None:
        raise DataError(f"checkpoint not found: {path}")
    return hub_snapshot(match.group("repo"), match.group("revision"), str(checkpoint))


def hub_snapshot(repo_id: str, revision: Optional[str] = None, shown: Optional[str] = None) -> Path:
    """Download (or find in the cache) a repository's config and weights; return its folder."""
    from huggingface_hub import constants, snapshot_download

    shown = shown or repo_id
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=CONFIG_PATTERNS + SAFETENSORS_PATTERNS))
        if not any(folder.glob("*.safetensors")):
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=CONFIG_PATTERNS + PICKLE_PATTERNS))
    except Exception as exc:
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set and the Hugging Face cache holds no copy"
        else:
            text = str(exc).strip().splitlines()
            why = f"the Hugging Face Hub did not provide it ({type(exc).__name__}: {text[0] if text else ''})"
        raise DataError(f"checkpoint {shown!r}: no such local file or folder, and {why}") from None
    return folder
