import torch

from erasure import closed_form
from erasure.closed_form import apply_deltas, mixing_matrix, remap_score, weight_deltas


def _problem(seed=0, d=24, n=40, p=60):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64),
            torch.randn(p, d, generator=g, dtype=torch.float64))


def test_solution_satisfies_its_normal_equations():
    e, a, p = _problem()
    w0 = torch.randn(16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lam, ridge = 0.7, 0.05
    m, _ = mixing_matrix(e, a, p, lam, ridge)
    w = w0 @ m
    # Independent gradient of sum ||W e - W0 a||^2 + lam sum ||W p - W0 p||^2 + ridge ||W - W0||^2.
    grad = 2 * (w @ e.T - w0 @ a.T) @ e + 2 * lam * (w @ p.T - w0 @ p.T) @ p + 2 * ridge * (w - w0)
    scale = 2 * (w0 @ a.T).abs() @ e.abs()
    assert grad.abs().max() / scale.abs().max() < 1e-6


def test_per_row_weights_enter_the_objective():
    e, a, p = _problem()
    wp = torch.linspace(0.1, 3.0, len(p), dtype=torch.float64)
    w0 = torch.randn(8, 24, dtype=torch.float64)
    m, _ = mixing_matrix(e, a, p, 1.0, 0.1, preserve_weights=wp)
    w = w0 @ m
    grad = 2 * (w @ e.T - w0 @ a.T) @ e + 2 * ((w - w0) @ p.T * wp) @ p + 0.2 * (w - w0)
    assert grad.abs().max() < 1e-8 * (w0.abs().max() * e.abs().max() ** 2 * len(e))


def test_huge_lambda_leaves_w0_unchanged():
    e, a, p = _problem(p=200)  # preserved rows span the space
    m, _ = mixing_matrix(e, a, p, 1e9, 0.1)
    assert (m - torch.eye(24, dtype=torch.float64)).abs().max() < 1e-6


def test_deltas_apply_to_w0_times_m():
    e, a, p = _problem()
    lin = torch.nn.Linear(24, 16, bias=False).double()
    w0 = lin.weight.detach().clone()
    m, _ = mixing_matrix(e, a, p, 1.0, 0.1)
    deltas = weight_deltas({"x.attn2.to_k": lin}, m)
    apply_deltas({"x.attn2.to_k": lin}, deltas)
    assert torch.allclose(lin.weight, w0 @ m, atol=1e-10)


def test_remap_score_is_one_for_a_full_remap_and_zero_untouched():
    lin = torch.nn.Linear(6, 4, bias=False)
    h, a = torch.randn(3, 6), torch.randn(3, 6)
    w0 = lin.weight.detach()
    # delta with delta h_i = W0 (a_i - h_i) for each token: delta = W0 (a - h)^T pinv(h^T)
    delta = w0 @ (a - h).T @ torch.linalg.pinv(h.T)
    assert abs(remap_score({"m": lin}, {"m": delta}, h, a) - 1) < 1e-4
    assert remap_score({"m": lin}, {"m": torch.zeros_like(w0)}, h, a) == 0


def test_duplicate_and_degenerate_rows_warn_and_stay_finite():
    import warnings
    e, a, p = _problem(d=16, n=3, p=0)
    e = e[:1].repeat(500, 1)                       # one token repeated: rank 1 in 16 dimensions
    a = a[:1].repeat(500, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m, cond = mixing_matrix(e, a, p, 1.0, 1e-14)
    assert any("ill-conditioned" in str(w.message) for w in caught) and cond > 1e12
    assert torch.isfinite(m).all()


def _one_product_solve(e, a, p, lam, ridge, we, wp):
    """The solve as one float64 product over all rows (the code before the blocked products), written out."""
    e, a, p, we, wp = (x.double() for x in (e, a, p, we, wp))
    keep = lam * (p.T * wp) @ p + ridge * torch.eye(e.shape[1], dtype=torch.float64)
    return torch.linalg.solve((e.T * we) @ e + keep, ((a.T * we) @ e + keep).T).T


def _text_like_rows(n, d, g, basis, scale):
    # a shared direction and a decaying spectrum, as text-encoder tokens have: an ill-conditioned Gram matrix
    return ((torch.randn(n, d, generator=g) * scale) @ basis.T + 0.5 * basis[:, 0]).float()


def test_a_solve_within_one_block_is_bitwise_the_one_product_solve():
    # What every single-concept run computes: the committed edits stay bit for bit what they were.
    g = torch.Generator().manual_seed(3)
    e, a, p = torch.randn(300, 48, generator=g), torch.randn(300, 48, generator=g), torch.randn(90, 48, generator=g)
    we, wp = torch.rand(300, generator=g) + 0.5, torch.rand(90, generator=g) + 0.5
    m, _ = mixing_matrix(e, a, p, 0.7, 0.1, erase_weights=we, preserve_weights=wp)
    assert torch.equal(m, _one_product_solve(e, a, p, 0.7, 0.1, we, wp))


def test_many_blocks_match_the_one_product_solve_to_1e_6(monkeypatch):
    g = torch.Generator().manual_seed(4)
    d = 64
    basis, scale = torch.linalg.qr(torch.randn(d, d, generator=g))[0], torch.logspace(0, -3, d)
    e, a, p = (_text_like_rows(n, d, g, basis, scale) for n in (2000, 2000, 500))
    we, wp = torch.rand(2000, generator=g) + 0.5, torch.rand(500, generator=g) + 0.5
    reference = _one_product_solve(e, a, p, 1.0, 0.1, we, wp)
    monkeypatch.setattr(closed_form, "BLOCK_ROWS", 97)   # 21 blocks, the last one short
    m, cond = mixing_matrix(e, a, p, 1.0, 0.1, erase_weights=we, preserve_weights=wp)
    eye = torch.eye(d, dtype=torch.float64)
    assert cond > 1e4   # the ill-conditioned case the float32 products failed on
    assert (m - reference).norm() / (reference - eye).norm() < 1e-6
