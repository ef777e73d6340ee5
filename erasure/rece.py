"""RECE (Gong et al., "Reliable and Efficient Concept Erasure", ECCV 2024; repository CharlesGong12/RECE):
UCE, then rounds of {find the embedding that makes the current edit regenerate the concept; erase it}.

Each round, with W the current and W0 the unedited projections of every cross-attention to_k / to_v:

  1. the adversarial embedding, in closed form over all of them at once (the reference's default,
     "regzero": regularized toward the zero vector),
         e' = argmin_e sum_W ||W e - W0 c||^2 + reg ||e||^2 = c [(sum W^T W + reg I)^-1 sum W^T W0]^T
     row by row of c, the concept's encoded sequence (every position, padding included);
  2. UCE's closed form applied to the current weights: e' mapped to the guide's rows (position by
     position, the reference's "replace"), the empty prompt and the preserve prompts kept as they are,
         W <- W M,  M = (lamb I + s_e sum g e'^T + s_p sum p p^T)(lamb I + s_e sum e' e'^T + s_p sum p p^T)^-1
     (closed_form.mixing_matrix; one M serves every layer because every target is W times a row).

Differences from the reference (docs/methods.md): a fixed number of rounds (`rece.epochs`) rather than
the round with the lowest detection rate on an evaluation prompt set, which would choose on the data
reported; the guide is the base UCE method's (`uce.guide`) rather than always " ".
"""
import torch

from .closed_form import mixing_matrix
from .text import TextEncoder


def adversarial_embedding(weights: dict[str, torch.Tensor], originals: dict[str, torch.Tensor],
                          concept: torch.Tensor, reg: float) -> torch.Tensor:
    """e' [L, D] (float64) for the concept's encoded sequence `concept` [L, D]: what the current weights
    need to give the unedited model's keys and values of the concept."""
    d = concept.shape[-1]
    gram = reg * torch.eye(d, dtype=torch.float64)
    cross = torch.zeros(d, d, dtype=torch.float64)
    for name, w in weights.items():
        w, w0 = w.double(), originals[name].double()
        gram += w.T @ w
        cross += w.T @ w0
    coefficient = torch.linalg.solve(gram, cross)
    return concept.double() @ coefficient.T


def erase_step(weights: dict[str, torch.Tensor], adversarial: torch.Tensor, guide: torch.Tensor,
               preserve: torch.Tensor, cfg: dict) -> tuple[dict[str, torch.Tensor], float]:
    """(the new weights, the solve's condition number): e' rows mapped to the guide rows under W."""
    m, cond = mixing_matrix(adversarial, guide, preserve, cfg["preserve_scale"], cfg["lamb"],
                            erase_weights=torch.full((len(adversarial),), float(cfg["erase_scale"])))
    return {name: (w.double() @ m).to(w.dtype) for name, w in weights.items()}, cond


def erase(encoder: TextEncoder, originals: dict[str, torch.Tensor], base: dict[str, torch.Tensor], concept: str,
          guide: str, preserve_prompts: list[str], cfg: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(final weights, per-round statistics) from the base (UCE-edited) weights."""
    emb = encoder.encode_tokens([concept, guide, ""] + list(preserve_prompts)).double()
    c, g, preserve = emb[0], emb[1], emb[2:].flatten(0, 1)
    weights, rounds = dict(base), []
    for _ in range(cfg["epochs"]):
        adv = adversarial_embedding(weights, originals, c, cfg["regular_scale"])
        weights, cond = erase_step(weights, adv, g, preserve, cfg)
        rounds.append({"adversarial_norm": round(adv.norm().item(), 4),
                       "cosine_to_concept": round(torch.nn.functional.cosine_similarity(
                           adv.flatten(), c.flatten(), dim=0).item(), 4),
                       "condition_number": cond})
    return weights, rounds
