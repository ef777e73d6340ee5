"""Scorers: turn images into a label per image. Every scorer has the same interface:

    scorer.score(paths, concepts) -> list of dicts {label, prob_label, prob: {concept: p}}

where `concepts` are the names the task knows. The mini world's oracle is the default; the CLIP,
GCD and NudeNet scorers for Stable Diffusion follow the same shape.
"""
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from .oracle import LABELS, Oracle


class OracleScorer:
    def __init__(self, weights_dir):
        path = Path(weights_dir) / "oracle.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"oracle weights not found: {path} (miniworld.weights in the config)")
        self.model = Oracle()
        self.model.load_state_dict(load_file(path))
        self.model.eval()

    @torch.inference_mode()
    def score(self, paths, concepts, batch_size=512):
        rows = []
        for i in range(0, len(paths), batch_size):
            x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[i:i + batch_size]])
            x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
            probs = self.model(x).softmax(-1)
            for pr in probs:
                label = LABELS[pr.argmax().item()]
                rows.append({"label": label, "prob": {c: pr[LABELS.index(c)].item() for c in LABELS}})
        return rows


def load_scorer(params):
    if params["world"] == "miniworld":
        return OracleScorer(params["miniworld"]["weights"])
    raise NotImplementedError("world sd: the CLIP, GCD and NudeNet scorers are not implemented yet; "
                              "run targets up to generate or remap (see README, Status)")
