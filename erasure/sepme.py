"""Separable multi-concept erasure (after SepME, arXiv 2402.05947): one weight increment per concept.

The paper's full text could not be checked (see docs/methods.md, "SepME"), so this is the math implemented.
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
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import cli, io
from .closed_form import mixing_matrix, weight_deltas
from .io import sidecar_path, slug
from .mining import clean_rows
from .world import load_world_from_params


def cir_targets(erase: torch.Tensor, anchor: torch.Tensor, preserve: torch.Tensor, components: int) -> torch.Tensor:
    """G-CiR targets [N, D]: the anchor plus the erase-anchor difference inside the unrelated subspace."""
    if components <= 0:
        return anchor
    x = preserve.double() - preserve.double().mean(0)
    u = torch.linalg.svd(x, full_matrices=False)[2][:components].T        # [D, r]
    diff = (erase - anchor).double()
    return (anchor.double() + diff @ u @ u.T).to(anchor.dtype)


def increments(rows: dict[str, tuple[torch.Tensor, torch.Tensor]], preserve: torch.Tensor, lam: float,
               known_weight: float, ridge: float,
               given: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
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


def module_increments(modules: dict[str, torch.nn.Linear], delta: torch.Tensor) -> dict[str, torch.Tensor]:
    """{module name: W0 Delta} in float32 on the host (where Delta is), the weight-delta format every stage reads."""
    return {name: (m.weight.detach().to("cpu", torch.float64) @ delta).float().contiguous()
            for name, m in modules.items()}


def compose(deltas: list[torch.Tensor]) -> torch.Tensor:
    """Sum of the chosen concepts' increments ({concept: Delta [D, D]}) in a fixed (sorted) order, in
    float64, so the result does not depend on the order they are given in; None when none is chosen."""
    total = None
    for name in sorted(deltas):
        total = deltas[name].double() if total is None else total + deltas[name].double()
    return total


def cross_talk(delta: torch.Tensor, tokens: torch.Tensor) -> float:
    """Largest relative move ||Delta x|| / ||x|| an increment makes to token rows x [N, D]. Every
    layer's keys and values see the token as W0 (I + Delta) x, so this is the change all of them inherit."""
    x = tokens.double()
    return ((x @ delta.double().T).norm(dim=1) / x.norm(dim=1).clamp_min(1e-12)).max().item()


def solve(prm: dict, concepts: list[str], inc_dir: str | Path, given_dir: str | Path | None = None,
          joint: str | Path | None = None) -> dict[str, torch.nn.Linear]:
    """Solve and store one increment per concept of `concepts` (inc_dir/<slug>.safetensors + sidecar),
    keeping the concepts of `given_dir`'s increments where they are; `joint` also writes the one joint
    closed-form solve for every concept (not separable). Returns the edited modules."""
    s = prm["sepme"]
    t0 = time.time()
    world = load_world_from_params(prm)
    modules = world.edit_modules()
    enc = world.encoder
    preserve = enc.encode_tokens(prm["preserve_prompts"]).flatten(0, 1)

    def concept_rows(c):   # the canonical prompt's span and the anchor's tokens
        return clean_rows(enc, [prm["prompt_template"].format(c)], c, prm["anchor"], world.causal_text)

    # 1. Rows of every concept being solved (span -> the anchor, or G-CiR targets).
    rows = {}
    for c in concepts:
        e, a = concept_rows(c)
        rows[c] = (e, cir_targets(e, a, preserve, s["cir_components"]))

    # 2. Concepts erased earlier: their tokens are kept; their increments are part of the current model.
    given = {}
    if given_dir:
        for c, path in increment_files(given_dir).items():
            if c not in rows:
                given[c] = (concept_rows(c)[0], load_delta(path))

    if joint:
        erase = torch.cat([e for e, _ in rows.values()])
        targets = torch.cat([t for _, t in rows.values()])
        m, _ = mixing_matrix(erase, targets, preserve, s["lam"], s["ridge"])
        io.save_safetensors(weight_deltas(modules, m), joint)
        io.write_json(sidecar_path(joint), {**prm, "joint": sorted(rows)})

    # 3. Solve; store each increment (one float64 D x D matrix) with its cross-talk onto the other
    #    known concepts' tokens.
    deltas = increments(rows, preserve, s["lam"], s["known_weight"], s["ridge"], given)
    known_rows = {**{c: r[0] for c, r in rows.items()}, **{c: g[0] for c, g in given.items()}}
    for c, delta in deltas.items():
        talk = {o: round(cross_talk(delta, known_rows[o]), 6) for o in known_rows if o != c}
        path = Path(inc_dir) / f"{slug(c)}.safetensors"
        io.save_safetensors({"delta": delta.contiguous()}, path)
        io.write_json(sidecar_path(path), {**prm, "concept": c, "known": sorted(known_rows),
                                           "cross_talk": talk, "wall_time_s": round(time.time() - t0, 3)})
        cli.progress(f"sepme {c}: increment written; largest cross-talk {max(talk.values(), default=0):.4f}")
    return modules


def load_delta(path: str | Path) -> torch.Tensor:
    return load_file(str(path))["delta"].double()


def increment_files(inc_dir: str | Path) -> dict[str, Path]:
    return {io.read_json(sidecar_path(p))["concept"]: p for p in sorted(Path(inc_dir).glob("*.safetensors"))}


def write_composed(inc_dir: str | Path, names: list[str] | None, out: str | Path,
                   modules: dict[str, torch.nn.Linear] | None = None) -> None:
    """The served edit: per-module deltas W0 (sum of the chosen increments; None: every increment in
    inc_dir), or none (W0 itself). `modules`: the edited model's, else loaded from the sidecars."""
    files = increment_files(inc_dir)
    names = list(files) if names is None else names
    unknown = sorted(set(names) - set(files))
    if unknown:
        raise ValueError(f"--erase: no increment for {unknown} in {inc_dir}; known: {sorted(files)}")
    total = compose({n: load_delta(files[n]) for n in names})
    module_deltas = {}
    if total is not None:
        if modules is None:   # the increments' sidecars name the model they were solved for
            modules = load_world_from_params(io.read_json(sidecar_path(files[names[0]]))).edit_modules()
        module_deltas = module_increments(modules, total)
    io.save_safetensors(module_deltas, out)
    io.write_json(sidecar_path(out), {"increments_dir": str(inc_dir), "erased": sorted(names),
                                     "restored": sorted(set(files) - set(names))})
    cli.progress(f"sepme edit: {len(names)} increments summed -> {out}")
