"""Closed-form edit of every cross-attention to_k / to_v (RealEra Eq. 7, UCE Eq. 7).

For each projection W0 it minimises
    sum_i ||W e_i - W0 a_i||^2 + lam * sum_j ||W p_j - W0 p_j||^2 + ridge * ||W - W0||_F^2
over erase tokens e_i (mapped to anchor tokens a_i) and preserved tokens p_j. The targets are all
W0 times a token, so the minimiser is W = W0 M with one shared D x D matrix
    M = (sum a e^T + lam sum p p^T + ridge I) (sum e e^T + lam sum p p^T + ridge I)^-1,
solved once in float64 and applied to every layer.
"""
import warnings

import torch

from .mining import project_out


# Rows per float64 block of the products below. A solve over fewer rows is one block, computed exactly as
# one product over all rows; the joint solve for 100 concepts (392,700 rows) never holds float64 copies of
# all its rows (2.4 GB each: its peak memory fell from 9.9 to 3.3 GB, 2.9 of them the rows themselves).
BLOCK_ROWS = 16384


def weighted_products(left: torch.Tensor, right: torch.Tensor, weights: torch.Tensor,
                      scale: float = 1.0) -> torch.Tensor:
    """scale * sum_i w_i left_i right_i^T [D, D] in float64, a block of rows at a time (scaled before the
    product, as the one-product code did, so one block rounds exactly as it did). Float64 throughout:
    float32 block products summed in float64 multiply twice as fast here but move the solve far past 1e-6
    relative (BENCHMARKS.md): the Gram matrices of text embeddings are ill-conditioned."""
    total = torch.zeros(left.shape[1], right.shape[1], dtype=torch.float64)
    for start in range(0, len(left), BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        # A pass over a block costs about a sixth of its product here (memory-bound): make no pass twice.
        lb = left[rows].double()
        rb = lb if right is left else right[rows].double()
        weighted = lb.T * weights[rows].double()
        total += (weighted if scale == 1 else scale * weighted) @ rb
    return total


def mixing_matrix(erase: torch.Tensor, targets: torch.Tensor, preserve: torch.Tensor, lam: float, ridge: float,
                  erase_weights: torch.Tensor | None = None,
                  preserve_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """M [D, D] (float64) such that W = W0 M minimises the objective above.

    erase, targets: [N, D] rows e_i and a_i; preserve: [P, D]. Optional per-row weights scale each term.
    """
    we = torch.ones(len(erase)) if erase_weights is None else erase_weights
    wp = torch.ones(len(preserve)) if preserve_weights is None else preserve_weights
    eye = torch.eye(erase.shape[1], dtype=torch.float64)
    keep = weighted_products(preserve, preserve, wp, lam) + ridge * eye
    gram = weighted_products(erase, erase, we) + keep        # sum e e^T + lam sum p p^T + ridge I
    cross = weighted_products(targets, erase, we) + keep     # sum a e^T + lam sum p p^T + ridge I
    # M gram = cross  <=>  gram^T M^T = cross^T; gram is symmetric.
    cond = torch.linalg.cond(gram).item()
    if cond > 1e12:
        warnings.warn(f"closed form: Gram matrix is ill-conditioned (cond {cond:.2e}); raise closed_form.ridge")
    m = torch.linalg.solve(gram, cross.T).T
    if not torch.isfinite(m).all():
        raise FloatingPointError("closed form produced non-finite weights: raise closed_form.ridge")
    return m, cond


def weight_deltas(modules: dict[str, torch.nn.Linear], m: torch.Tensor) -> dict[str, torch.Tensor]:
    """{module name: W0 (M - I)} in each module's dtype, on the host (where M is, and where the deltas are
    saved from), for every edited projection."""
    eye = torch.eye(m.shape[0], dtype=torch.float64)
    return {name: (mod.weight.detach().to("cpu", torch.float64) @ (m - eye)).to(mod.weight.dtype).contiguous()
            for name, mod in modules.items()}


def apply_deltas(modules: dict[str, torch.nn.Linear], deltas: dict[str, torch.Tensor], scale: float = 1.0) -> None:
    """Add deltas in place to the named modules' weights."""
    missing = set(deltas) - set(modules)
    if missing:
        raise KeyError(f"weight deltas name modules the model does not have: {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, delta in deltas.items():
            modules[name].weight += scale * delta.to(modules[name].weight)


def remap_score(modules: dict[str, torch.nn.Linear], deltas: dict[str, torch.Tensor], prompt_tokens: torch.Tensor,
                anchor_tokens: torch.Tensor) -> float:
    """Sample-free diagnostic: how far an edit moves a prompt's keys/values toward the anchor's.

    t = <W h - W0 h, W0 a - W0 h> / ||W0 a - W0 h||^2 per layer (1 = fully remapped, 0 = untouched),
    averaged over layers. prompt_tokens, anchor_tokens: aligned [T, D].
    """
    scores = []
    for name, delta in deltas.items():
        w0 = modules[name].weight.detach().to("cpu", torch.float64)
        h, a = prompt_tokens.double(), anchor_tokens.double()
        moved = h @ delta.to("cpu", torch.float64).T
        gap = (a - h) @ w0.T
        scores.append(((moved * gap).sum() / (gap * gap).sum().clamp_min(1e-12)).item())
    return sum(scores) / len(scores)


def least_squares_rows(prompts: list[dict], preserve_tokens: torch.Tensor, regularization: str,
                       reg_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Stack the rows of the objective from an embedding set's prompts (see embedding_set.load).

    Returns erase [N, D], targets [N, D], preserve [P, D], preserve weights [P] and the number of
    beyond-concept rows. regularization: none | paper (beyond samples as they are) | projected
    (their component along each erase token removed).
    """
    erase, targets, beyond = [], [], []
    for p in prompts:
        erase.append(p["erase"])
        targets.append(p["anchor"])
        if p["neighbors"] is not None:
            erase.append(p["neighbors"].flatten(0, 1))
            targets.append(p["anchors"].flatten(0, 1))
        if regularization != "none":
            if p["beyond"] is None:
                raise ValueError("regularization needs beyond-concept samples: use a mining sampler other than none")
            b = p["beyond"] if regularization == "paper" else project_out(p["beyond"], p["erase"])
            beyond.append(b.flatten(0, 1))
    beyond = torch.cat(beyond) if beyond else preserve_tokens[:0]
    preserve = torch.cat([preserve_tokens, beyond])
    weights = torch.cat([torch.ones(len(preserve_tokens)), torch.full((len(beyond),), reg_weight)])
    return torch.cat(erase), torch.cat(targets), preserve, weights, len(beyond)
