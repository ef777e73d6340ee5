"""Export: an edited model as a directory plain diffusers loads, with its model card.

Stable Diffusion (and SDXL, Flux): the base model's pipeline directory (`DiffusionPipeline.from_pretrained(dir)`)
whose UNet (Flux: transformer) has the edit merged into its weights; the unchanged components (text
encoder, tokenizer, VAE, ...) are hard links to the base model's files where the file system allows (no
disk used, and the directory stays whole when copied away), copies otherwise. Its scheduler is the one
the stages sample with (SD: DDIM; Flux: its own), so the same seed draws the same image as the generate
stage. The mini world: its UNet
(`UNet2DConditionModel.from_pretrained(dir, subfolder="unet")`) and DDIM scheduler.

Optionally (export.lora_rank > 0) a LoRA of the whole edit, for users who want a small file: each
changed linear weight's delta fit at that rank by SVD, with each fit's relative error measured.
"""
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import torch

from . import io
from .edits import apply_edit
from .flux import component
from .world import World, load_world_from_params

OWN_FILES = ("unet", "transformer", "scheduler", "model_index.json", "README.md")  # written here; the rest is linked


def export(prm: dict, deltas: str | None, lora: str | None, out_dir: str | Path,
           make_card: Callable[[dict | None], str], progress: Callable[[str], None] = print) -> None:
    """Write the edited model to `out_dir`, replaced whole and never left half-written, with README.md
    from make_card(the LoRA fit's figures, or None without a LoRA export)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        world = load_world_from_params(prm)
        base = {k: v.detach().clone() for k, v in world.unet.state_dict().items()} if prm["export"]["lora_rank"] else None
        apply_edit(world, deltas, lora)
        scheduler = world.make_scheduler()
        if prm["world"] == "sd":
            src = base_model_dir(prm["sd"]["model"])
            link_components(src, tmp)
            _write_model_index(src, tmp, type(scheduler).__name__)
        edited, folder = component(world.unet)
        progress(f"export: writing the edited {folder} to {out_dir}")
        edited.save_pretrained(tmp / folder, safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        fit = lora_fit(world, base, prm["export"]["lora_rank"], tmp / "lora") if base is not None else None
        (tmp / "README.md").write_text(make_card(fit), encoding="utf-8")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def base_model_dir(model: str) -> Path:
    """The local directory of an SD model: itself, or a hub id's snapshot in the local cache."""
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser().resolve()
    from huggingface_hub import snapshot_download
    return Path(snapshot_download(model, local_files_only=True))


def link_components(src: Path, dst: Path) -> None:
    """Every file of `src` but the ones the export writes, hard-linked (copied across file systems)."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.parts[0] in OWN_FILES or rel.parts[0].startswith(".") or not path.is_file():
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path.resolve(), target)
        except OSError:
            shutil.copy2(path.resolve(), target)


def _write_model_index(src: Path, dst: Path, scheduler: str) -> None:
    """The base model's index with the scheduler the stages sample with (SD: DDIM; Flux: its own)."""
    index = json.loads((src / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", scheduler]
    (dst / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def lora_fit(world: World, base: dict[str, torch.Tensor], rank: int, out_dir: Path) -> dict:
    """A rank-`rank` LoRA of every changed linear weight (W_edit - W_base = B A by truncated SVD),
    saved as diffusers' pytorch_lora_weights.safetensors; returns each fit's relative Frobenius error
    and the changed parameters a LoRA cannot carry (convolutions, norms, biases)."""
    from diffusers import StableDiffusionPipeline

    linear = {f"{n}.weight" for n, m in world.unet.named_modules() if isinstance(m, torch.nn.Linear)}
    layers, errors, left_out = {}, {}, []
    for name, weight in world.unet.state_dict().items():
        delta = weight.detach().float().cpu() - base[name].float().cpu()
        if not delta.any():
            continue
        if name not in linear:
            left_out.append(name)
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        r = min(rank, len(s))
        b, a = u[:, :r] * s[:r], vh[:r]
        module = name[:-len(".weight")]
        errors[module] = float(torch.linalg.norm(delta - b @ a) / torch.linalg.norm(delta))
        layers[f"{module}.lora_A.weight"] = a.to(weight.dtype).contiguous()
        layers[f"{module}.lora_B.weight"] = b.to(weight.dtype).contiguous()
    if not layers:
        raise ValueError("export.lora_rank: the edit changes no linear weight, so there is no LoRA to fit; "
                         "set export.lora_rank to 0")
    out_dir.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=layers)
    fit = {"rank": rank, "modules": len(errors), "max_relative_error": max(errors.values()),
           "mean_relative_error": sum(errors.values()) / len(errors), "relative_error": errors,
           "not_in_lora": left_out}
    io.write_json(out_dir / "lora_fit.json", fit)
    return fit
