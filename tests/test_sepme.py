"""SepME algebra: separable increments, order-free composition, restoration, one more concept."""
import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, run_stage
from erasure import sepme
from erasure.closed_form import mixing_matrix
from erasure.mining import clean_rows

KNOWN = ["heart", "crescent", "circle", "cross"]
CROSS_TALK_TOLERANCE = 0.01   # stated: with known_weight 100, an increment moves another known concept's
                              # keys/values by at most 1% of their norm


@pytest.fixture(scope="module")
def world():
    from erasure.world import load_miniworld
    return load_miniworld(ROOT / "weights/miniworld")


@pytest.fixture(scope="module")
def rows(world):
    enc = world.encoder
    preserve = enc.encode(["a square", "a triangle", "a star", "a ring"]).flatten(0, 1)
    return {c: clean_rows(enc, [f"a {c}"], c, "a shape", False) for c in KNOWN}, preserve


def test_with_unit_weights_the_increments_sum_to_the_joint_solve(rows):
    r, preserve = rows
    deltas = sepme.increments(r, preserve, lam=1.0, known_weight=1.0, ridge=0.1)
    erase = torch.cat([e for e, _ in r.values()])
    targets = torch.cat([t for _, t in r.values()])
    m, _ = mixing_matrix(erase, targets, preserve, 1.0, 0.1)
    joint = m - torch.eye(m.shape[0], dtype=torch.float64)
    assert torch.allclose(sum(deltas.values()), joint, atol=1e-9, rtol=1e-7)


def test_an_increment_barely_moves_the_other_known_concepts(rows):
    r, preserve = rows
    deltas = sepme.increments(r, preserve, lam=1.0, known_weight=100.0, ridge=0.1)
    for c, d in deltas.items():
        for other in KNOWN:
            if other != c:
                assert sepme.cross_talk(d, r[other][0]) <= CROSS_TALK_TOLERANCE, (c, other)
        # and it does erase its own concept: its tokens move most of the way to the anchor's
        e, a = r[c]
        moved = ((e.double() @ d.T) * (a - e).double()).sum() / ((a - e).double() ** 2).sum()
        assert moved > 0.8, (c, moved)


def test_cross_talk_is_the_relative_move_of_the_worst_token():
    delta = torch.diag(torch.tensor([0.5, 0.0], dtype=torch.float64))
    tokens = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    assert sepme.cross_talk(delta, tokens) == pytest.approx(0.5)
    assert sepme.cross_talk(delta, tokens[1:2]) == 0.0


def test_composition_is_order_free_and_empty_gives_w0(rows):
    r, preserve = rows
    deltas = sepme.increments(r, preserve, 1.0, 100.0, 0.1)
    a = sepme.compose(deltas)
    b = sepme.compose(dict(reversed(list(deltas.items()))))
    assert torch.equal(a, b)
    assert torch.allclose(a, sum(deltas.values()), atol=1e-12)
    assert sepme.compose({}) is None


def test_restoring_one_concept_leaves_the_others_erased(rows):
    r, preserve = rows
    deltas = sepme.increments(r, preserve, 1.0, 100.0, 0.1)
    without_heart = sum(d for c, d in deltas.items() if c != "heart")
    e, a = r["heart"]
    # heart's tokens are (almost) back where W0 had them ...
    assert (e.double() @ without_heart.T).norm() / e.double().norm() < CROSS_TALK_TOLERANCE
    # ... while crescent stays mapped toward the anchor
    e, a = r["crescent"]
    moved = ((e.double() @ without_heart.T) * (a - e).double()).sum() / ((a - e).double() ** 2).sum()
    assert moved > 0.8


def test_one_more_concept_given_an_erased_set(rows):
    r, preserve = rows
    first = {c: r[c] for c in KNOWN[:3]}
    deltas = sepme.increments(first, preserve, 1.0, 100.0, 0.1)
    given = {c: (r[c][0], deltas[c]) for c in first}
    more = sepme.increments({"cross": r["cross"]}, preserve, 1.0, 100.0, 0.1, given=given)
    e, a = r["cross"]
    current = torch.eye(e.shape[1], dtype=torch.float64) + sum(deltas.values()) + more["cross"]
    after = e.double() @ current.T
    # the combined model maps cross's tokens most of the way to the anchor's ...
    assert ((after - e.double()) * (a - e).double()).sum() / ((a - e).double() ** 2).sum() > 0.8
    # ... and the new increment leaves the earlier concepts' tokens in place
    for c in first:
        assert (r[c][0].double() @ more["cross"].T).norm() / r[c][0].double().norm() < CROSS_TALK_TOLERANCE


def test_stage_solves_composes_and_restores(tmp_path, world):
    inc = tmp_path / "inc"
    run_stage("sepme", "--config", ROOT / "config.yaml", "--concepts", "heart", "--concepts", "crescent",
              "--increments-dir", inc, "--out", tmp_path / "both.safetensors")
    both = load_file(tmp_path / "both.safetensors")
    # restoring heart needs no config: the increments' sidecars name the model
    run_stage("sepme", "--increments-dir", inc, "--erase", "crescent", "--out", tmp_path / "crescent.safetensors")
    only = load_file(tmp_path / "crescent.safetensors")
    heart, crescent = load_file(inc / "heart.safetensors")["delta"], load_file(inc / "crescent.safetensors")["delta"]
    assert heart.dtype == torch.float64 and heart.shape == (384, 384)
    modules = world.edit_modules()
    assert set(both) == set(only) == set(modules)
    for k, m in modules.items():
        w0 = m.weight.detach().double()
        assert torch.allclose(both[k].double(), w0 @ (heart + crescent), atol=1e-6)
        assert torch.allclose(only[k].double(), w0 @ crescent, atol=1e-6)
    bad = run_stage("sepme", "--increments-dir", inc, "--erase", "ring", "--out", tmp_path / "x.safetensors",
                    check=False)
    assert bad.returncode == 2 and "no increment for ['ring']" in bad.stderr
    assert not (tmp_path / "x.safetensors").exists()
