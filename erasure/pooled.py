"""SDXL's pooled text embedding, edited in closed form like the token rows (option closed_form.pooled).

SDXL's UNet adds the second text encoder's pooled embedding to its timestep embedding through
`add_embedding.linear_1`, whose first `pooled_dim` input columns read it (the rest read the time ids).
A to_k / to_v edit never touches that path, so an erased concept can still reach the image through it
(UCE issue #35 reports "cat" surviving UCE on SDXL). This edit maps the erase prompts' pooled
embeddings to the anchor's (UCE: the guide's) through those columns with the closed form's own
objective (erasure/closed_form.py: W = W0 M, the preserve prompts' pooled embeddings kept, the same
weights), and leaves the time-id columns alone. The delta is keyed by parameter name, which
edits.apply_edit adds like a fine-tuned method's.
"""
import torch

from .closed_form import mixing_matrix
from .text import TextEncoder

MODULE = "add_embedding.linear_1"


def pooled_rows(encoder: TextEncoder, prompts: list[str]) -> torch.Tensor:
    """The pooled embeddings [B, pooled_dim] the SDXL encoder carries in each prompt's last row."""
    return encoder.encode(list(prompts))[:, encoder.max_length, :encoder.pooled_dim]


def pooled_delta(unet: torch.nn.Module, encoder: TextEncoder, erase_prompts: list[str], anchor: str,
                 preserve_prompts: list[str], lam: float, ridge: float,
                 erase_weight: float = 1.0) -> tuple[dict[str, torch.Tensor], float]:
    """({"add_embedding.linear_1.weight": delta}, the solve's condition number)."""
    erase = pooled_rows(encoder, erase_prompts)
    targets = pooled_rows(encoder, [anchor]).expand_as(erase)
    preserve = pooled_rows(encoder, preserve_prompts) if preserve_prompts else erase[:0]
    m, cond = mixing_matrix(erase, targets, preserve, lam, ridge,
                            erase_weights=torch.full((len(erase),), float(erase_weight)))
    weight = unet.get_submodule(MODULE).weight
    w0 = weight.detach().to("cpu", torch.float64)
    d = encoder.pooled_dim
    delta = torch.zeros_like(w0)
    delta[:, :d] = w0[:, :d] @ (m - torch.eye(d, dtype=torch.float64))
    return {f"{MODULE}.weight": delta.to(weight.dtype).contiguous()}, cond


def method_delta(prm: dict, unet: torch.nn.Module, encoder: TextEncoder,
                 mined: dict) -> tuple[dict[str, torch.Tensor], float]:
    """The pooled edit of a closed-form stage's method: UCE's prompts, guide and scales (kind uce), or the
    embedding set's erase prompts and anchor with the closed form's lam and ridge."""
    if prm["kind"] == "uce":
        u = prm["uce"]
        return pooled_delta(unet, encoder, prm["erase_prompts"], u["guide"], prm["preserve_prompts"],
                            u["preserve_scale"], u["lamb"], u["erase_scale"])
    cf = prm["closed_form"]
    return pooled_delta(unet, encoder, mined["erase_prompts"], mined["anchor"], prm["preserve_prompts"],
                        cf["lam"], cf["ridge"])
