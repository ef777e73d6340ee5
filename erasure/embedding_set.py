"""Embedding sets: the audited hand-off from mining to the edits.

One safetensors file per (sampler, concept), tensors keyed per erase prompt i:
  p{i}.erase [T, D], p{i}.anchor [T, D]        the aligned clean spans
  p{i}.neighbors [M, T, D], p{i}.anchors [M, T, D]   mined neighbours and their perturbed anchors
  p{i}.beyond [N, T, D]                       beyond-concept samples (kept where they are)
and a JSON sidecar with every parameter and the acceptance and distance statistics.
"""
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .io import sidecar_path

KINDS = ("erase", "anchor", "neighbors", "anchors", "beyond")


def load(path: str | Path) -> tuple[list[dict], dict]:
    """(list of per-prompt dicts, sidecar dict); raises ValueError naming the file on any defect."""
    path = Path(path)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"embedding set {path}: unreadable safetensors ({e}); rerun the mine stage") from None
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise ValueError(f"embedding set {path}: sidecar {meta_path.name} missing; rerun the mine stage")
    meta = json.loads(meta_path.read_text())
    prompts = []
    for i in range(meta["num_prompts"]):
        entry = {k: tensors.get(f"p{i}.{k}") for k in KINDS}
        if entry["erase"] is None or entry["anchor"] is None:
            raise ValueError(f"embedding set {path}: prompt {i} lacks erase/anchor tensors; rerun the mine stage")
        t, d = entry["erase"].shape
        for k, v in entry.items():
            if v is None:
                continue
            if v.shape[-2:] != (t, d) or v.dim() not in (2, 3):
                raise ValueError(f"embedding set {path}: p{i}.{k} has shape {tuple(v.shape)}, expected [..., {t}, {d}]; "
                                 "rerun the mine stage")
            if not torch.isfinite(v).all():
                raise ValueError(f"embedding set {path}: p{i}.{k} contains NaN or inf; rerun the mine stage")
        prompts.append(entry)
    return prompts, meta
