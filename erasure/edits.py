"""Applying a method's edits to a world: closed-form deltas, then an optional LoRA (fused)."""
import hashlib
from pathlib import Path

from safetensors.torch import load_file

from .closed_form import apply_deltas

LORA_FILE = "pytorch_lora_weights.safetensors"


def apply_edit(world, deltas_path=None, lora_dir=None):
    """Add closed-form deltas to the UNet's to_k / to_v, then load and fuse a LoRA if given."""
    if deltas_path:
        apply_deltas(world.edit_modules(), load_file(deltas_path))
    if lora_dir:
        world.unet.load_lora_adapter(str(lora_dir), weight_name=LORA_FILE, adapter_name="erase", prefix="unet")
        world.unet.fuse_lora(adapter_names=["erase"])
        world.unet.unload_lora()
    return world


def fingerprint(*paths, extra=""):
    """Content hash of edit files and settings: images made under another edit are never reused."""
    h = hashlib.sha256(extra.encode())
    for p in paths:
        if p:
            p = Path(p)
            files = sorted(p.rglob("*.safetensors")) if p.is_dir() else [p]
            for f in files:
                h.update(f.read_bytes())
    return h.hexdigest()[:16]
