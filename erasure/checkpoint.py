"""Training checkpoints as safetensors: parameters, AdamW moments, the RNG state and the step.

A resumed run continues bit-identically to an uninterrupted one (the tests check this).
"""
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from . import io


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
