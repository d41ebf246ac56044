"""Random pruning: the baseline any scored selection has to beat, on TopK's schedule.

Each clip gets a random priority per original patch, and every stage keeps the ceil(k * N)
tokens of highest priority (a random subset of a random subset is a uniformly random subset).
The priorities depend only on the seed and the clip's position in its batch, drawn from a
generator of its own: reproducible across runs, untouched by torch's global random state, the same
for a clean and a noisy batch of the same clips, and independent of what else the batch holds.

Under a key-padding mask (pad-batch, sorted) padding is never drawn in place of a real token: each
clip keeps ceil(k * real) of its real tokens (ScorePruning's padding contract). The draw is over
the batch's grid and the clip's row, so which real tokens survive depends on the batch's length
and the clip's place in it (as it always depended on the row): random is the one built-in whose
selection differs between pad-batch, sorted and native below keep rate 1; its kept count does not.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from prunebench.core.errors import ConfigError
from prunebench.method_api import AttentionInfo, ModelDims, ScorePruning
from prunebench.core.registry import register_method
from prunebench.method_api.tokens import TokenState


@register_method("random")
class RandomPruning(ScorePruning):
    """Random: keep a seeded random ceil(k*N) of the patch tokens at each reduction layer."""

    defaults = {**ScorePruning.defaults, "seed": 0}
    validation_params = ScorePruning.validation_params + ({"seed": 1},)

    def __init__(self, **params):
        super().__init__(**params)
        self._rows: Dict[Tuple[int, str], torch.Tensor] = {}  # (patches, device) -> drawn rows

    def validate(self) -> None:
        super().validate()
        seed = self.params["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"method 'random': seed must be a whole number >= 0, got {seed!r}")

    def priorities(self, batch: int, num_patches: int, device: torch.device) -> torch.Tensor:
        """(batch, num_patches) priorities; row i is drawn from its own generator seeded by (seed, i)."""
        key = (num_patches, str(device))
        rows = self._rows.get(key)
        if rows is None or rows.shape[0] < batch:
            start = 0 if rows is None else rows.shape[0]
            new = [torch.rand(num_patches, generator=torch.Generator().manual_seed(self._row_seed(i)))
                   for i in range(start, batch)]
            rows = torch.cat(([rows] if rows is not None else []) + [torch.stack(new).to(device)])
            self._rows[key] = rows
        return rows[:batch]

    def _row_seed(self, row: int) -> int:
        return (self.params["seed"] * 1_000_003 + row) % (2**63)

    def begin(self, fbank: torch.Tensor, state: TokenState, dims: ModelDims, valid_frames: Optional[torch.Tensor]) -> None:
        state.carried["random"] = self.priorities(fbank.shape[0], state.num_patches, fbank.device)

    def score(self, x: torch.Tensor, state: TokenState, info: AttentionInfo) -> torch.Tensor:
        return state.carried["random"]
