"""SPEED (Li et al., ICLR 2026, arXiv 2503.07392): a closed-form edit of every cross-attention value
projection that lies in the null space of the knowledge it must keep.

For one value projection W0 [out, D], erase rows c_i [n, D] mapped to anchor rows a_i, and retained
rows K [m, D], SPEED edits W = W0 + Delta with Delta confined to rows orthogonal to everything kept:

  1. Null space (AlphaEdit's construction): U [D, k], the eigenvectors of K^T K whose eigenvalues are
     below `threshold` (approximately zero), so Delta = Delta' U^T changes W K by at most
     sqrt(threshold) * |Delta'| per row, and by exactly nothing when K has rank below D.
  2. Invariant Equality Constraints (IEC): rows whose keys and values must not move at all, the
     start token (the same vector in every CLIP prompt) and the null text's rows (the unconditional
     branch of classifier-free guidance). Delta J = 0 for their rows J is an equality constraint on
     Delta'; its Lagrangian solution restricts U to the part orthogonal to U^T J: U2 = U Q, Q an
     orthonormal basis of the complement of the column space of U^T J.
  3. The erasure objective in that subspace, Delta' minimising
         sum_i ||Delta' U2^T c_i - (W0 a_i - W0 c_i)||^2 + lamb ||Delta'||^2,
     X = C U2 [n, k2]: Delta'^T = (X^T X + lamb I)^-1 X^T R, or with lamb = 0 the least-norm
     solution pinv(X) R (exact erasure whenever the subspace has room for it). R = (A - C) W0^T, so
     both are Z W0^T with Z solved from the embedding rows alone: Delta = W0 (U2 Z)^T.

The retained rows K come from Prior Knowledge Refinement:
  - Influence-based Prior Filtering (IPF): the erasure-only edit (step 3 with U2 = I) moves each
    candidate prompt's values by s_j = sum_rows ||Delta_e k||^2 (its "prior shift"); a candidate is
    kept when s_j > alpha * mean(s) (alpha = 1: above the mean).
  - Directed Prior Augmentation (DPA): each kept prompt gets `aug_num` copies with Gaussian noise
    projected onto the `aug_rank` input directions along which W0 varies least (its smallest right
    singular vectors), so an augmented prompt maps to (nearly) the same value; the copies pass
    IPF again (against their own mean) and join K.
Every step runs per layer in float64 (the DPA directions and the prior shifts depend on W0).

Where this differs from, or could not be checked against, the reference: docs/baselines.md.
"""
import torch


def least_norm_edit(w0: torch.Tensor, erase: torch.Tensor, gap: torch.Tensor, basis: torch.Tensor | None,
                    lamb: float) -> tuple[torch.Tensor, float]:
    """(Delta [out, D] = Delta' basis^T fitting Delta c_i = W0 (a_i - c_i) for every erase row (step 3), the
    fit's relative miss ||C U Z - gap|| / ||gap|| in embedding space: 0 when every row is met exactly).

    erase [n, D]; gap [n, D] the anchor rows minus the erase rows; basis U [D, k] orthonormal columns
    (None: the whole space, the erasure-only edit). The targets are W0 times a row, so
    Delta'^T = Z W0^T with Z [k, D] solved from the rows alone and Delta = W0 (U Z)^T: no product with
    the [n, out] targets (72 rows a concept, 7,200 for 100)."""
    if basis is not None and basis.shape[1] == 0:
        return torch.zeros_like(w0), 1.0
    x = erase if basis is None else erase @ basis                       # [n, k]; None: all of R^D
    if lamb > 0:
        z = torch.linalg.solve(x.T @ x + lamb * torch.eye(x.shape[1], dtype=torch.float64), x.T @ gap)
    else:
        z = torch.linalg.pinv(x) @ gap                                  # least norm, exact when it can be
    if basis is None:   # the erasure-only edit: IPF reads its shifts, nobody its miss
        return w0 @ z.T, float("nan")
    miss = ((x @ z - gap).norm() / gap.norm().clamp_min(1e-30)).item()
    return w0 @ (basis @ z).T, miss


def shift_factor(delta: torch.Tensor) -> torch.Tensor:
    """F [r, D] with ||F k|| = ||Delta k|| for every k (S V^T of Delta's thin SVD): the erasure-only edit
    has the rank of its erase rows, so prior shifts through F cost a fraction of products with Delta."""
    _, s, vh = torch.linalg.svd(delta, full_matrices=False)
    keep = s > s.max() * 1e-12 if s.numel() and s.max() > 0 else s > 0
    return s[keep, None] * vh[keep]


def prior_shifts(factor: torch.Tensor, candidates: list[torch.Tensor]) -> torch.Tensor:
    """s_j = sum over candidate j's rows k of ||Delta k||^2 = ||F k||^2: [number of candidates]."""
    if not candidates:
        return torch.zeros(0, dtype=torch.float64)
    per_row = ((torch.cat(candidates) @ factor.T) ** 2).sum(-1)
    return torch.stack([part.sum() for part in per_row.split([len(c) for c in candidates])])


def influential(shifts: torch.Tensor, alpha: float) -> list[int]:
    """IPF: the candidates whose prior shift is above alpha times the mean shift."""
    if len(shifts) == 0:
        return []
    threshold = alpha * shifts.mean().item()
    return [j for j, s in enumerate(shifts.tolist()) if s > threshold]


def least_varying_directions(w0: torch.Tensor, rank: int) -> torch.Tensor:
    """[rank, D]: the right singular vectors of W0 with the smallest singular values (W0 moves least along
    them): the eigenvectors of W0^T W0 with the smallest eigenvalues (no [out, out] factor computed)."""
    return torch.linalg.eigh(w0.T @ w0)[1][:, :rank].T


def dpa_coefficients(prompt: torch.Tensor, times: int, rank: int, generator: torch.Generator) -> list[torch.Tensor]:
    """DPA: for `times` copies of a prompt's rows [L, D], the noise each row gets along the `rank`
    least-varying directions V: copy = prompt + S V with S [L, rank]. The noise is Gaussian at the row's
    own scale (standard deviation |row| / sqrt(D) per coordinate) projected onto V; such a projection has
    independent N(0, scale^2) coefficients along each direction, so those are drawn directly."""
    scale = prompt.norm(dim=-1, keepdim=True) / prompt.shape[-1] ** 0.5  # [L, 1]
    return [torch.randn(len(prompt), rank, generator=generator, dtype=torch.float64) * scale for _ in range(times)]


def retained_gram(bases: list[torch.Tensor], copies: list[tuple[int, torch.Tensor]],
                  directions: torch.Tensor | None) -> torch.Tensor:
    """K^T K [D, D] of the kept prompts' rows and their kept copies (base index j, S): a copy's rows are
    c_j + S V, so the copies add w_j c_j^T c_j + c_j^T S V + V^T S^T c_j + V^T S^T S V, and the whole
    Gram matrix is one product over the bases' rows (weighted by 1 + their copies) plus rank-r terms,
    instead of a product over every copy's rows (ten times as many)."""
    d = bases[0].shape[1] if bases else 0
    weights = torch.ones(len(bases), dtype=torch.float64)
    cross = torch.zeros(d, len(directions) if directions is not None else 0, dtype=torch.float64)  # sum c^T S
    square = torch.zeros(cross.shape[1], cross.shape[1], dtype=torch.float64)                       # sum S^T S
    for j, coefficients in copies:
        weights[j] += 1
        cross += bases[j].T @ coefficients
        square += coefficients.T @ coefficients
    rows = torch.cat([b * w.sqrt() for b, w in zip(bases, weights)])
    gram = rows.T @ rows
    if copies:
        spread = cross @ directions                                      # [D, D], rank r
        gram += spread + spread.T + directions.T @ square @ directions
    return gram


def null_space(gram: torch.Tensor, threshold: float) -> torch.Tensor:
    """U [D, k]: eigenvectors of the retained rows' Gram matrix K^T K with eigenvalue below the threshold
    (all of R^D when nothing is kept, gram = 0)."""
    values, vectors = torch.linalg.eigh(gram)
    return vectors[:, values < threshold]


def without_invariants(basis: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
    """IEC: the part of span(basis) orthogonal to every invariant row, as orthonormal columns [D, k2]."""
    if basis.shape[1] == 0 or len(invariants) == 0:
        return basis
    projected = basis.T @ invariants.T                                  # [k, q]
    u, s, _ = torch.linalg.svd(projected, full_matrices=True)
    rank = int((s > s.max() * 1e-10).sum()) if s.numel() and s.max() > 0 else 0
    return basis @ u[:, rank:]


def edit_layer(w0: torch.Tensor, erase: torch.Tensor, anchors: torch.Tensor, candidates: list[torch.Tensor],
               invariants: torch.Tensor, cfg: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """(Delta [out, D] float64, statistics) for one value projection.

    erase, anchors: [n, D] rows mapped one to one; candidates: each retained prompt's rows [L, D];
    invariants: [q, D] rows that must keep their values exactly (used when cfg["iec"]);
    cfg: threshold, lamb, alpha, aug_num, aug_rank and the method's ipf / dpa / iec switches."""
    w0, erase, anchors, invariants = w0.double(), erase.double(), anchors.double(), invariants.double()
    candidates = [c.double() for c in candidates]
    gap = anchors - erase                                               # [n, D]: Delta c must be W0 gap

    # 1. IPF on the prompts: which ones the erasure alone would move most.
    factor = shift_factor(least_norm_edit(w0, erase, gap, None, cfg["lamb"])[0])
    kept = influential(prior_shifts(factor, candidates), cfg["alpha"]) if cfg["ipf"] else list(range(len(candidates)))
    retained = [candidates[j] for j in kept]
    # 2. DPA on the kept prompts, the copies filtered by IPF again: copy = c_j + S V, never materialised
    #    beyond its shift (F (c_j + S V) = F c_j + S (F V^T)^T).
    copies, directions = [], None
    if cfg["dpa"] and retained:
        directions = least_varying_directions(w0, cfg["aug_rank"])
        copies = [(j, s) for j, c in enumerate(retained) for s in dpa_coefficients(c, cfg["aug_num"], cfg["aug_rank"], generator)]
        if cfg["ipf"]:
            along = directions @ factor.T                               # [r, rank of F]
            shifts = torch.stack([((retained[j] @ factor.T + s @ along) ** 2).sum() for j, s in copies])
            copies = [copies[i] for i in influential(shifts, cfg["alpha"])]
    n_rows = sum(len(c) for c in retained) + sum(len(s) for _, s in copies)
    gram = retained_gram(retained, copies, directions) if retained else torch.zeros(len(gap.T), len(gap.T), dtype=torch.float64)
    # 3. The null space of what is kept, less the invariants' directions; the erasure solved in it.
    basis = null_space(gram, cfg["threshold"])
    null_dim = basis.shape[1]
    if cfg["iec"]:
        basis = without_invariants(basis, invariants)
    delta, miss = least_norm_edit(w0, erase, gap, basis, cfg["lamb"])
    # ||K Delta^T|| / ||K W0^T|| through the Gram matrix: K has tens of thousands of rows on SD
    kept_change = (((delta @ gram) * delta).sum() / ((w0 @ gram) * w0).sum()).sqrt().item() if n_rows else 0.0
    return delta, {"candidates": len(candidates), "kept_by_ipf": len(kept), "kept": kept, "augmented_kept": len(copies),
                   "retained_rows": n_rows, "null_space_dim": null_dim, "edit_space_dim": basis.shape[1],
                   "erase_miss_relative": round(miss, 6),
                   "retained_value_change_relative": kept_change}
