import numpy as np
import pytest

from erasure.render import SHAPES, render, render_batch


def test_same_seed_same_images():
    a, la, ca = render_batch(50, seed=3)
    b, lb, cb = render_batch(50, seed=3)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and ca == cb


def test_different_seed_different_images():
    a, _, _ = render_batch(20, seed=3)
    b, _, _ = render_batch(20, seed=4)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_draws_something_coloured(shape):
    img = np.asarray(render(shape, (200, 30, 30), 0.3, 0.5, 0.5, 0.1))
    assert img.shape == (32, 32, 3)
    coloured = (img[..., 0] > 150) & (img[..., 1] < 120)
    assert 20 < coloured.sum() < 32 * 32 * 0.6


def test_ring_and_circle_differ_in_the_middle():
    ring = np.asarray(render("ring", (0, 0, 200), 0.35, 0.5, 0.5, 0.0))
    circle = np.asarray(render("circle", (0, 0, 200), 0.35, 0.5, 0.5, 0.0))
    assert ring[16, 16].mean() > 200 and circle[16, 16].mean() < 150


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape"):
        render("hexagon", (0, 0, 0), 0.3, 0.5, 0.5, 0.0)
