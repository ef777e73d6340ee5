"""SPEED (erasure/speed.py): the edit lies in the null space of what is kept, the invariants keep their
values exactly, IPF and DPA do what the paper says, and the stage edits only the value projections."""
import json

import pytest
import torch
import yaml
from conftest import ROOT, filled_config, run_stage, sd_params
from safetensors.torch import load_file

from erasure import speed
from erasure.config import defaults
from erasure.world import load_miniworld, load_world_from_params

EXACT = {**defaults("speed"), "threshold": 1e-9, "ipf": False, "dpa": False, "iec": True}


def _problem(seed=0, out=20, d=32, kept_rank=10):
    """W0, erase and anchor rows, retained prompts spanning kept_rank dimensions, and invariant rows."""
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(out, d, generator=g, dtype=torch.float64)
    span = torch.randn(kept_rank, d, generator=g, dtype=torch.float64)
    kept = [torch.randn(4, kept_rank, generator=g, dtype=torch.float64) @ span for _ in range(5)]
    erase, anchors = torch.randn(2, 4, d, generator=g, dtype=torch.float64)
    invariants = torch.randn(3, d, generator=g, dtype=torch.float64)
    return w0, erase, anchors, kept, invariants


def test_the_edit_leaves_every_retained_row_and_invariant_unchanged_and_erases_exactly():
    w0, erase, anchors, kept, invariants = _problem()
    delta, stats = speed.edit_layer(w0, erase, anchors, kept, invariants, EXACT, torch.Generator().manual_seed(0))
    rows = torch.cat(kept)
    assert (rows @ delta.T).norm() < 1e-10 * (rows @ w0.T).norm()                 # the null space of K
    assert (invariants @ delta.T).norm() < 1e-10 * (invariants @ w0.T).norm()     # IEC
    assert ((erase @ (w0 + delta).T) - anchors @ w0.T).norm() < 1e-9 * (anchors @ w0.T).norm()
    assert stats["null_space_dim"] == 32 - 10 and stats["edit_space_dim"] == 32 - 10 - 3


def test_without_iec_the_invariants_move():
    """The IEC test above can fail: the same edit without the constraint moves the invariant rows."""
    w0, erase, anchors, kept, invariants = _problem()
    delta, _ = speed.edit_layer(w0, erase, anchors, kept, invariants, {**EXACT, "iec": False},
                                torch.Generator().manual_seed(0))
    assert (invariants @ delta.T).norm() > 1e-3 * (invariants @ w0.T).norm()


def test_the_ridge_solution_is_the_stationary_point_of_the_objective():
    """lamb > 0: the gradient of sum ||Delta' U^T c - r||^2 + lamb ||Delta'||^2 vanishes at the solution."""
    w0, erase, anchors, kept, _ = _problem(seed=1)
    rows = torch.cat(kept)
    basis = speed.null_space(rows.T @ rows, 1e-9)
    residual = (anchors - erase) @ w0.T
    delta, _ = speed.least_norm_edit(w0, erase, anchors - erase, basis, lamb=0.5)
    inner = delta @ basis                                                   # Delta' [out, k]
    x = erase @ basis
    gradient = 2 * (inner @ x.T - residual.T) @ x + 2 * 0.5 * inner
    assert gradient.abs().max() < 1e-9 * residual.abs().max()
    assert torch.allclose(delta, delta @ basis @ basis.T, atol=1e-12)       # its rows lie in span(U)


def test_ipf_keeps_the_candidates_above_alpha_times_the_mean_shift():
    shifts = torch.tensor([1.0, 2.0, 3.0, 10.0])                            # mean 4
    assert speed.influential(shifts, 1.0) == [3]
    assert speed.influential(shifts, 0.5) == [2, 3]                         # above 2: 3 and 10
    assert speed.influential(shifts, 0.2) == [0, 1, 2, 3]                   # above 0.8: all
    assert speed.influential(torch.zeros(0), 1.0) == []
    delta = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    rows = [torch.tensor([[3.0, 4.0]], dtype=torch.float64), torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)]
    shifts = speed.prior_shifts(speed.shift_factor(delta), rows)            # ||Delta k||^2 summed per candidate
    assert torch.allclose(shifts, torch.tensor([9.0 + 64.0, 1.0 + 4.0], dtype=torch.float64))


def _copies(w0, prompt, times, rank, g):
    directions = speed.least_varying_directions(w0, rank)
    return [prompt + s @ directions for s in speed.dpa_coefficients(prompt, times, rank, g)]


def test_dpa_copies_move_only_along_the_least_varying_directions_of_w():
    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(8, 8, generator=g, dtype=torch.float64)   # distinct singular values: one least direction
    prompt = torch.randn(5, 8, generator=g, dtype=torch.float64)
    copies = _copies(w0, prompt, 4, 1, g)
    assert len(copies) == 4
    v = torch.linalg.svd(w0)[2][-1:]                                          # independent: the SVD's
    for c in copies:
        moved = c - prompt
        assert moved.norm() > 1e-3                                          # a real perturbation
        assert torch.allclose(moved, (moved @ v.T) @ v, atol=1e-10)         # along v_min only
    wide = torch.randn(6, 8, generator=g, dtype=torch.float64)              # two exact null directions
    for c in _copies(wide, prompt, 3, 2, g):
        assert torch.allclose(c @ wide.T, prompt @ wide.T, atol=1e-10)      # the same values


def test_the_retained_gram_equals_the_gram_of_every_row():
    """The Gram matrix built from the bases and the copies' coefficients equals K^T K over the copies' rows."""
    g = torch.Generator().manual_seed(4)
    w0 = torch.randn(5, 8, generator=g, dtype=torch.float64)
    directions = speed.least_varying_directions(w0, 2)
    bases = [torch.randn(4, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    copies = [(j, s) for j in (0, 2) for s in speed.dpa_coefficients(bases[j], 3, 2, g)][1:]   # base 1: none
    rows = torch.cat(bases + [bases[j] + s @ directions for j, s in copies])
    assert torch.allclose(speed.retained_gram(bases, copies, directions), rows.T @ rows, rtol=1e-12, atol=1e-10)
    assert torch.allclose(speed.retained_gram(bases, [], None), torch.cat(bases).T @ torch.cat(bases))


def _stage_config(tmp_path, **speed_settings):
    config = filled_config()
    config["out_dir"] = str(tmp_path)
    config["miniworld"]["weights"] = str(ROOT / "weights/miniworld")
    config["concepts_file"] = str(ROOT / config["concepts_file"])
    config["speed"].update(speed_settings)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_stage_edits_the_value_projections_only_and_keeps_the_preserve_prompts_values(tmp_path):
    """On the mini world, with a null space that is exact (threshold far below every kept eigenvalue):
    every to_v is edited, no to_k; the values of the preserve prompts IPF kept in each layer and of the
    null text are unchanged to float32 precision; the erase prompt's values move. The same config gives
    the same bytes."""
    path = _stage_config(tmp_path, threshold=1e-6)
    out = tmp_path / "speed.safetensors"
    run_stage("speed", "--config", path, "--method", "speed", "--concept", "heart", "--out", out)
    deltas = load_file(out)
    world = load_miniworld(ROOT / "weights/miniworld")
    values = {n: m for n, m in world.edit_modules().items() if n.endswith("to_v")}
    assert set(deltas) == set(values)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["preserve_prompts"] and all(s["kept_by_ipf"] >= 1 for s in sidecar["layers"].values())

    candidates = world.encoder.encode(sidecar["preserve_prompts"])
    null_text = world.encoder.encode([""])[0]
    erased = world.encoder.encode(["a heart"])[0]
    for name, module in values.items():
        w0 = module.weight.detach()
        kept = torch.cat([candidates[sidecar["layers"][name]["kept"]].flatten(0, 1), null_text])
        assert (kept @ deltas[name].T).norm() < 1e-5 * (kept @ w0.T).norm(), name
        assert (erased @ deltas[name].T).norm() > 1e-2 * (erased @ w0.T).norm(), name

    again = tmp_path / "again.safetensors"
    run_stage("speed", "--config", path, "--method", "speed", "--concept", "heart", "--out", again)
    assert out.read_bytes() == again.read_bytes()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_stage_on_a_half_precision_sd(tiny_sd, tmp_path, dtype):
    """The solves run in float64 and the deltas come back in the model's dtype. (The tiny SD's text space
    is 32-dimensional: the null text's 16 rows would fill the null space of a prompt's, so no IEC here.)"""
    world = sd_params(tiny_sd, dtype)
    prm = {**world, "concept": "heart", "erase_prompts": ["a photo of heart"], "preserve_prompts": ["a circle", "a cat"],
           "speed": {**defaults("speed"), "ipf": True, "dpa": True, "iec": False}, "seed": 1}
    out = tmp_path / "speed.safetensors"
    run_stage("speed", "--params", json.dumps(prm), "--method", "speed", "--concept", "heart", "--out", out)
    deltas = load_file(out)
    modules = load_world_from_params(world).edit_modules()
    assert set(deltas) == {n for n in modules if n.endswith("to_v")}
    assert all(d.dtype == getattr(torch, dtype) and torch.isfinite(d).all() for d in deltas.values())
    assert any(d.abs().max() > 0 for d in deltas.values())
