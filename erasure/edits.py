"""Applying a method's edits to a world: closed-form deltas, then an optional LoRA (fused); an
inference-time method (AdaVD) installs its attention processors instead."""
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from . import adavd
from .closed_form import apply_deltas
from .flux import component

if TYPE_CHECKING:
    from .world import World

LORA_FILE = "pytorch_lora_weights.safetensors"


def apply_edit(world: "World", deltas_path: str | Path | None = None, lora_dir: str | Path | None = None) -> "World":
    """Add weight deltas, then load and fuse a LoRA if given.

    Delta files are keyed by module name (closed forms: the module's weight) or by parameter name
    (fine-tuning methods such as ESD: any parameter of the UNet). An AdaVD file holds the concept
    embeddings its processors project out, and no weights.
    """
    if deltas_path:
        deltas = load_file(deltas_path)
        if adavd.TARGET_KEY in deltas:
            with safe_open(str(deltas_path), "pt") as f:
                settings = adavd.read_settings(f.metadata(), str(deltas_path))
            adavd.install(world.unet, deltas.pop(adavd.TARGET_KEY), settings)
        params = dict(world.unet.named_parameters())
        by_param = {k: v for k, v in deltas.items() if k in params}
        apply_deltas(world.edit_modules(), {k: v for k, v in deltas.items() if k not in by_param})
        with torch.no_grad():
            for name, delta in by_param.items():
                params[name] += delta.to(params[name])
    if lora_dir:
        host, prefix = component(world.unet)
        host.load_lora_adapter(str(lora_dir), weight_name=LORA_FILE, adapter_name="erase", prefix=prefix)
        host.fuse_lora(adapter_names=["erase"])
        host.unload_lora()
    return world


def fingerprint(*paths: str | Path | None, extra: str = "") -> str:
    """Content hash of edit files and settings: images made under another edit are never reused."""
    h = hashlib.sha256(extra.encode())
    for p in paths:
        if p:
            p = Path(p)
            files = sorted(p.rglob("*.safetensors")) if p.is_dir() else [p]
            for f in files:
                h.update(f.read_bytes())
    return h.hexdigest()[:16]
