"""Training checkpoints as safetensors: parameters, AdamW moments, the RNG state and the step.

A resumed run continues bit-identically to an uninterrupted one (the tests check this). Each checkpoint
records its owner, a fingerprint of the settings and input files that made it: a run with other
settings (a changed learning rate, step count or rank) starts over instead of resuming someone else's.
"""
import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from . import io


def owner(settings: dict, *files: str | Path | None) -> str:
    """Fingerprint of a training run: its settings and the bytes of its input files (a directory: its
    .safetensors files, in name order, as a LoRA directory)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        if f:
            f = Path(f)
            for part in sorted(f.glob("*.safetensors")) if f.is_dir() else [f]:
                h.update(part.read_bytes())
    return h.hexdigest()[:20]


def save(path: str | Path, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, gen: torch.Generator,
         step: int, tensors: dict[str, torch.Tensor] | None = None, metadata: dict[str, str] | None = None) -> None:
    """Write `params` (a list), their optimizer state, `gen`'s state, `step`, plus extra tensors."""
    out = dict(tensors or {})
    for i, p in enumerate(params):
        state = opt.state[p]
        out[f"param.{i}"] = p.detach().contiguous()
        out[f"adam.{i}.exp_avg"] = state["exp_avg"]
        out[f"adam.{i}.exp_avg_sq"] = state["exp_avg_sq"]
        out[f"adam.{i}.step"] = state["step"].reshape(1)
    out["rng"] = gen.get_state()
    io.save_safetensors(out, path, metadata={**(metadata or {}), "step": str(step)})


def load(path: str | Path, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer,
         gen: torch.Generator) -> tuple[int, dict[str, torch.Tensor], dict[str, str]]:
    """Restore what `save` wrote into params, opt and gen; returns (step, other tensors, metadata)."""
    tensors = load_file(path)
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(tensors.pop(f"param.{i}"))
            opt.state[p] = {"exp_avg": tensors.pop(f"adam.{i}.exp_avg"),
                            "exp_avg_sq": tensors.pop(f"adam.{i}.exp_avg_sq"),
                            "step": tensors.pop(f"adam.{i}.step").reshape(())}
    gen.set_state(tensors.pop("rng"))
    return int(metadata["step"]), tensors, metadata


def resume(path: str | Path, params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, gen: torch.Generator,
           run_owner: str, progress: Callable[[str], None]) -> tuple[int, dict[str, torch.Tensor], dict[str, str]]:
    """(step, other tensors, metadata) from the checkpoint at `path` when `run_owner` made it; (0, {}, {})
    when there is none, or when other settings made it (the file is removed, and the run says so)."""
    path = Path(path)
    if not path.exists():
        return 0, {}, {}
    with safe_open(path, "pt") as f:
        made_by = f.metadata().get("owner")
    if made_by != run_owner:
        progress(f"checkpoint {path} was made with other settings or inputs; starting over")
        path.unlink()
        return 0, {}, {}
    return load(path, params, opt, gen)
