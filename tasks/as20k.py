"""AS-20K: AudioSet's balanced training set (about 20k clips) and evaluation set, AST's way.

A local folder with AST-style manifests (`{"data": [{"wav": PATH, "labels": "/m/09x0r,..."}]}`,
or csv of path + label ids) and AudioSet's `class_labels_indices.csv` (index, mid, display_name:
527 labels). Multi-label; mAP (macro average precision, torchmetrics). Clips are 10 s: the front
end pads each fbank to the model's frame count (1024 for the AST-base models, as AST). AudioSet
normalisation statistics. Entries whose file is missing (AudioSet downloads always miss some) or
whose label is not in the label map are an error naming the manifest line, or, with
`on_bad_clip: skip`, left out, counted and listed in every record.
"""
from __future__ import annotations

import logging

from prunebench.core.registry import register_task
from prunebench.metrics.map import MeanAveragePrecision

from prunebench.tasks.audio_folder import AudioFolder

log = logging.getLogger(__name__)
AUDIOSET_LABELS = 527


@register_task("as20k")
class AS20K(AudioFolder):
    """AudioSet balanced train (~20k) / eval from a folder + AST-style manifests; 527 labels; mAP."""

    name = "as20k"
    defaults = {"root": None, "split": "eval", "train_split": "train",
                "manifest": {"train": "train.json", "eval": "eval.json"}, "labels": "class_labels_indices.csv"}
    clip_seconds = 10.0  # buckets 2.5, 5 and 10 s; AudioFolder's default norm_stats are AudioSet's
    license = "AudioSet: CC BY 4.0 (labels); audio from YouTube under its uploaders' terms"

    @property
    def metric(self) -> str:  # type: ignore[override]
        return MeanAveragePrecision.name

    def _label_map(self, entries):
        labels = super()._label_map(entries)
        if len(labels.names) != AUDIOSET_LABELS:
            log.warning("%s has %d labels, AudioSet has %d", labels.source, len(labels.names), AUDIOSET_LABELS)
        return labels
