import torch

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
