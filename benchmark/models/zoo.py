"""The model zoo: published checkpoints prunebench loads, where they come from, their licences.

A zoo name works wherever a checkpoint is asked for (`checkpoint:` in a config, `--init`,
`load_model`): entries on the Hugging Face Hub resolve to their Hub id (downloaded once into the
Hugging Face cache); the others name the file to download and pass by path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class ZooEntry:
    name: str
    model: str  # the registered architecture it loads into
    hub_id: Optional[str]  # Hugging Face Hub repository, if there is one
    original: str  # the authors' release: file and address
    licence: str
    about: str


AST_LICENCE = "BSD-3-Clause (YuanGongND/ast)"
AUDIOMAE_LICENCE = "CC BY-NC 4.0 (facebookresearch/AudioMAE)"

ZOO: Dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry("ast-audioset-10-10", "ast-base", "MIT/ast-finetuned-audioset-10-10-0.4593",
             "audioset_10_10_0.4593.pth, https://www.dropbox.com/s/cv4knew8mvbrnvq/audioset_0.4593.pth?dl=1",
             AST_LICENCE, "AST on AudioSet-2M, 527 classes, 0.459 mAP; stride 10, 1024 frames"),
    ZooEntry("ast-audioset-16-16", "ast-base-s16", "MIT/ast-finetuned-audioset-16-16-0.442",
             "audioset_16_16_0.4422.pth, https://www.dropbox.com/s/mdsa4t1xmcimia6/audioset_16_16_0.4422.pth?dl=1",
             AST_LICENCE, "AST on AudioSet-2M, 527 classes, 0.442 mAP; stride 16, 1024 frames"),
    ZooEntry("ast-speechcommands", "ast-base", "MIT/ast-finetuned-speech-commands-v2",
             "speechcommands_10_10_0.9812.pth, https://www.dropbox.com/s/q0tbqpwv44pquwy/speechcommands_10_10_0.9812.pth?dl=1",
             AST_LICENCE, "AST on Speech Commands V2-35, 98.12% accuracy; 128 frames; its own fbank statistics"),
    ZooEntry("audiomae-as2m-pretrained", "audiomae-base", None,
             "pretrained.pth, https://drive.google.com/file/d/1rRsmU8x7D-x4BvcPyroUJwU18eixNfKg",
             AUDIOMAE_LICENCE, "AudioMAE ViT-B MAE-pretrained on AudioSet-2M: an encoder to fine-tune (--init)"),
    ZooEntry("audiomae-as2m-finetuned", "audiomae-base", None,
             "finetuned.pth, https://drive.google.com/file/d/1dacJa-XcaoLPZf--mLvzSdlzo5iMX2ST",
             AUDIOMAE_LICENCE, "AudioMAE ViT-B fine-tuned on AudioSet-2M, 527 classes, 0.473 mAP; mean pooling"),
    ZooEntry("deit-base-384-imagenet", "ast-base", "timm/deit_base_distilled_patch16_384.fb_in1k",
             "DeiT-B distilled 384 (facebookresearch/deit), the ImageNet start of AST",
             "Apache-2.0 (facebookresearch/deit)", "ImageNet weights to fine-tune from, as AST's AS-20K recipe (--init)"),
)}


def zoo_hub_id(name: str) -> Optional[str]:
    """The Hub id behind a zoo name (None for names not in the zoo); a clear error for entries
    that are not on the Hub."""
    from ..errors import DataError

    entry = ZOO.get(name)
    if entry is None:
        return None
    if entry.hub_id is None:
        raise DataError(f"zoo checkpoint {name!r} is not on the Hugging Face Hub: download {entry.original} "
                        f"and pass the file's path")
    return entry.hub_id
