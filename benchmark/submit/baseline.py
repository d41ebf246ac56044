"""The closed-division check: the bundle's `none` made the same per-clip predictions as the
published `none` of the track, variant by variant, with the checkpoint the track pins. Equal
predictions on every clip prove the same data, weights and front end; the method's rows then stand
beside the published ones as equals."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

from prunebench.core.errors import PrunebenchError
from prunebench.records.entries import PUBLISHED, RECORDS
from prunebench.records.record import Record
from prunebench.submit.integrity import Bundle
from prunebench.submit.verdict import CheckFailed


def published_baselines(store: Path, track: str) -> Dict[Tuple[str, str], Record]:
    """The published `none` records of a track: (model, variant) -> record."""
    folder = Path(store) / track / PUBLISHED / RECORDS
    if not folder.is_dir():
        raise CheckFailed(f"the results store {store} has no published run of track {track} to compare none with")
    try:
        records = Record.read_folder(folder)
    except PrunebenchError as exc:
        raise CheckFailed(f"the published run of track {track}: {exc}") from None
    return {(r.model, r.variant): r for r in records if r.ok and r.method.is_baseline}


def check_closed(bundle: Bundle, store: Path) -> str:
    published = published_baselines(store, bundle.track.name)
    pinned = bundle.track.model.get("checkpoint_sha256") or {}
    compared = clips = 0
    for rel, mine in sorted(bundle.records.items()):
        if not mine.method.is_baseline:
            continue
        want = pinned.get(mine.split) if isinstance(pinned, dict) else pinned
        if want and mine.checkpoint_sha256 != want:
            raise CheckFailed(f"{rel} was made with checkpoint {str(mine.checkpoint_sha256)[:12]}, track "
                              f"{bundle.track.name} pins {want[:12]} for {mine.split} (another checkpoint: "
                              f"--division open)", rel)
        theirs = published.get((mine.model, mine.variant))
        if theirs is None:
            raise CheckFailed(f"{rel}: the store has no published none for {mine.variant}", rel)
        if mine.clips.ids != theirs.clips.ids:
            raise CheckFailed(f"{rel} lists other clips than the published none of {mine.variant}", rel)
        differ = [i for i, (a, b) in enumerate(zip(mine.clips.pred or [], theirs.clips.pred or [])) if a != b]
        if mine.clips.pred is None or theirs.clips.pred is None or differ:
            first = mine.clips.ids[differ[0]] if differ else "(no predictions)"
            raise CheckFailed(f"{rel}: none's predictions differ from the published none's on {len(differ)} of "
                              f"{len(mine.clips.ids)} clips of {mine.variant} (first: {first}); another checkpoint, data "
                              f"or front end: --division open", rel)
        compared += 1
        clips += len(mine.clips.ids)
    return f"none's predictions equal the published none's on all {clips} clips of {compared} variants"
