"""Separable multi-concept erasure (after SepME, arXiv 2402.05947): one weight increment per concept.

The paper's full text could not be checked (see README, "SepME"), so this is the math implemented.
Every cross-attention projection becomes W = W0 (I + sum_{k in S} Delta_k) for the chosen subset S of
the known undesirable concepts K. Concept k's increment Delta_k (D x D, shared by all layers, stored
as that one matrix; the per-module deltas W0 sum Delta_k are made once, when a subset is composed) minimises

    sum_{i in k} ||(I + Delta_k) e_i - t_i||^2                      erase k's tokens toward targets t_i
    + known_weight * sum_{j in K, j != k} sum_{x in j} ||Delta_k x||^2   leave the other known concepts alone
    + lam * sum_{p in preserve} ||Delta_k p||^2 + ridge * ||Delta_k||_F^2

so Delta_k = R_k G_k^-1 with R_k = sum_i (t_i - e_i) e_i^T and G_k = E_k + known_weight (E_K - E_k)
+ lam P + ridge I (E_k = sum over k's tokens of e e^T; E_K over every known concept's). All G_k share
E_K, P and the ridge; with known_weight = 1 they are one matrix G, and sum_k Delta_k is exactly the
joint closed-form solve for K: the joint solution splits into per-concept increments, each expressed
through the solution for the known set. Dropping an increment restores its concept, because every
other increment was solved to keep that concept's tokens where they were (to within the stated
tolerance: it is a weighted least-squares constraint, not an exact one).

Concept-irrelevant representations (G-CiR, cir_components = r > 0): the target of an erase token keeps
the part of its difference from the anchor that lies along the top-r principal directions of the
preserve prompts' tokens (how unrelated prompts vary), t_i = a_i + U U^T (e_i - a_i); only the rest,
specific to the concept, is erased. With r = 0 the target is the anchor token.
"""
import torch


def cir_targets(erase, anchor, preserve, components):
    """G-CiR targets [N, D]: the anchor plus the erase-anchor difference inside the unrelated subspace."""
    if components <= 0:
        return anchor
    x = preserve.double() - preserve.double().mean(0)
    u = torch.linalg.svd(x, full_matrices=False)[2][:components].T        # [D, r]
    diff = (erase - anchor).double()
    return (anchor.double() + diff @ u @ u.T).to(anchor.dtype)


def increments(rows, preserve, lam, known_weight, ridge, given=None):
    """{concept: Delta_k [D, D] float64} for every concept in `rows` ({concept: (erase, targets)}).

    `given` ({concept: (erase, Delta)}) are concepts erased earlier: their tokens count as known
    (kept), and a new concept's residual is taken on the model that already carries their increments.
    """
    given = given or {}
    d = preserve.shape[1]
    gram = {k: e.double().T @ e.double() for k, (e, _) in rows.items()}
    known = sum(gram.values()) + sum((e.double().T @ e.double() for e, _ in given.values()),
                                     torch.zeros(d, d, dtype=torch.float64))
    keep = lam * preserve.double().T @ preserve.double() + ridge * torch.eye(d, dtype=torch.float64)
    current = torch.eye(d, dtype=torch.float64) + sum((delta for _, delta in given.values()),
                                                      torch.zeros(d, d, dtype=torch.float64))
    out = {}
    for k, (e, t) in rows.items():
        e, t = e.double(), t.double()
        g = gram[k] + known_weight * (known - gram[k]) + keep
        r = (t - e @ current.T).T @ e                     # sum (t_i - W_cur e_i) e_i^T
        out[k] = torch.linalg.solve(g, r.T).T             # R G^-1 (G symmetric)
    return out


def module_increments(modules, delta):
    """{module name: W0 Delta} in float32, the weight-delta format every stage reads."""
    return {name: (m.weight.detach().double() @ delta).float().contiguous() for name, m in modules.items()}


def compose(deltas):
    """Sum of the chosen concepts' increments ({concept: Delta [D, D]}) in a fixed (sorted) order, in
    float64, so the result does not depend on the order they are given in; None when none is chosen."""
    total = None
    for name in sorted(deltas):
        total = deltas[name].double() if total is None else total + deltas[name].double()
    return total


def cross_talk(delta, tokens):
    """Largest relative move ||Delta x|| / ||x|| an increment makes to token rows x [N, D]. Every
    layer's keys and values see the token as W0 (I + Delta) x, so this is the change all of them inherit."""
    x = tokens.double()
    return ((x @ delta.double().T).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).max().item()
