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


def mixing_matrix(erase, targets, preserve, lam, ridge, erase_weights=None, preserve_weights=None):
    """M [D, D] (float64) such that W = W0 M minimises the objective above.

    erase, targets: [N, D] rows e_i and a_i; preserve: [P, D]. Optional per-row weights scale each term.
    """
    e, a, p = (x.double() for x in (erase, targets, preserve))
    we = torch.ones(len(e), dtype=torch.float64) if erase_weights is None else erase_weights.double()
    wp = torch.ones(len(p), dtype=torch.float64) if preserve_weights is None else preserve_weights.double()
    eye = torch.eye(e.shape[1], dtype=torch.float64)
    keep = lam * (p.T * wp) @ p + ridge * eye
    gram = (e.T * we) @ e + keep          # sum e e^T + lam sum p p^T + ridge I
    cross = (a.T * we) @ e + keep         # sum a e^T + lam sum p p^T + ridge I
    # M gram = cross  <=>  gram^T M^T = cross^T; gram is symmetric.
    cond = torch.linalg.cond(gram).item()
    if cond > 1e12:
        warnings.warn(f"closed form: Gram matrix is ill-conditioned (cond {cond:.2e}); raise closed_form.ridge")
    m = torch.linalg.solve(gram, cross.T).T
    if not torch.isfinite(m).all():
        raise FloatingPointError("closed form produced non-finite weights: raise closed_form.ridge")
    return m, cond


def weight_deltas(modules, m):
    """{module name: W0 (M - I)} in each module's dtype, for every edited projection."""
    eye = torch.eye(m.shape[0], dtype=torch.float64)
    return {name: (mod.weight.detach().double() @ (m - eye)).to(mod.weight.dtype).contiguous()
            for name, mod in modules.items()}


def apply_deltas(modules, deltas, scale=1.0):
    """Add deltas in place to the named modules' weights."""
    missing = set(deltas) - set(modules)
    if missing:
        raise KeyError(f"weight deltas name modules the model does not have: {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, delta in deltas.items():
            modules[name].weight += scale * delta.to(modules[name].weight)


def remap_score(modules, deltas, prompt_tokens, anchor_tokens):
    """Sample-free diagnostic: how far an edit moves a prompt's keys/values toward the anchor's.

    t = <W h - W0 h, W0 a - W0 h> / ||W0 a - W0 h||^2 per layer (1 = fully remapped, 0 = untouched),
    averaged over layers. prompt_tokens, anchor_tokens: aligned [T, D].
    """
    scores = []
    for name, delta in deltas.items():
        w0 = modules[name].weight.detach().double()
        h, a = prompt_tokens.double(), anchor_tokens.double()
        moved = h @ delta.double().T
        gap = (a - h) @ w0.T
        scores.append(((moved * gap).sum() / (gap * gap).sum().clamp_min(1e-12)).item())
    return sum(scores) / len(scores)
