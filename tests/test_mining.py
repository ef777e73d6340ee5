import pytest
import torch

from erasure.mining import mine, perturb, principal_directions, project_out

CFG = dict(num_neighbors=200, num_beyond=200, d1=0.6, d1_anchor=0.3, d2=3.0, s1=0.999, s2=0.3)


def _cos(x, e):
    return torch.nn.functional.cosine_similarity(x, e.expand_as(x), dim=-1)


@pytest.fixture
def tokens():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 64, generator=g) * 3 + 1, torch.randn(5, 64, generator=g) * 3


@pytest.mark.parametrize("sampler", ["paper", "data"])
def test_every_accepted_sample_meets_its_constraints(tokens, sampler):
    e, a = tokens
    basis = principal_directions(torch.randn(400, 64), 16) if sampler == "data" else None
    sets, stats = mine(e, a, CFG, seed=1, basis=basis)
    norm = e.norm(dim=-1).mean()
    d1, d1a, d2 = CFG["d1"] * norm, CFG["d1_anchor"] * norm, CFG["d2"] * norm
    assert sets["neighbors"].shape == (200, 5, 64) and sets["beyond"].shape == (200, 5, 64)
    dn = (sets["neighbors"] - e).norm(dim=-1)
    assert (dn <= d1 + 1e-4).all()
    cn = _cos(sets["neighbors"], e)
    assert (cn >= CFG["s2"] - 1e-6).all() and (cn <= CFG["s1"] + 1e-6).all()
    assert ((sets["anchors"] - a).norm(dim=-1) <= d1a + 1e-4).all()
    db = (sets["beyond"] - e).norm(dim=-1)
    assert (db >= d1 - 1e-4).all() and (db < d2 + 1e-4).all()
    assert (_cos(sets["beyond"], e) < CFG["s2"] + 1e-6).all()
    assert stats["neighbors"]["requested"] == 200 and 0 < stats["neighbors"]["acceptance_rate"] <= 1


def test_same_seed_same_samples(tokens):
    e, a = tokens
    s1, _ = mine(e, a, CFG, seed=5)
    s2, _ = mine(e, a, CFG, seed=5)
    s3, _ = mine(e, a, CFG, seed=6)
    assert torch.equal(s1["neighbors"], s2["neighbors"]) and not torch.equal(s1["neighbors"], s3["neighbors"])


def test_impossible_constraints_say_which_settings(tokens):
    e, _ = tokens
    with pytest.raises(ValueError, match="widen the cosine window"):
        perturb(e, 10, 0.0, 0.01, -1.0, -0.9, torch.Generator().manual_seed(0), max_rounds=2)


def test_data_sampler_moves_only_inside_the_basis(tokens):
    e, _ = tokens
    basis = principal_directions(torch.randn(300, 64) @ torch.diag(torch.tensor([5.0] * 8 + [0.0] * 56)), 8)
    x, _ = perturb(e, 50, 0.0, 5.0, -1.0, 1.0, torch.Generator().manual_seed(0), basis)
    moved = (x - e)[..., 8:]
    assert moved.abs().max() < 1e-4


def test_project_out_leaves_nothing_along_the_erase_tokens(tokens):
    e, _ = tokens
    samples = torch.randn(30, 5, 64)
    proj = project_out(samples, e)
    assert (proj * e).sum(-1).abs().max() < 1e-3
