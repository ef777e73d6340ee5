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


def test_coloured_grounds_keep_the_shapes_and_show_through_holes():
    """pretrain.oracle.coloured_backgrounds: the same shapes as on white (the shape stream is untouched),
    each on a ground far from its colour; a ring's hole shows the ground, not white."""
    from erasure.render import WHITE
    white, labels, names = render_batch(40, 5)
    coloured, labels_c, names_c = render_batch(40, 5, coloured=1.0)
    assert (labels == labels_c).all() and names == names_c and not (white == coloured).all()
    corners = coloured[:, 0, 0].astype(float)   # every shape keeps inside the image: a corner is ground
    assert (corners != 255).any(axis=1).all()
    ground = (30, 140, 160)
    ring = np.asarray(render("ring", (220, 40, 40), 0.35, 0.5, 0.5, 0.0, background=ground))
    on_white = np.asarray(render("ring", (220, 40, 40), 0.35, 0.5, 0.5, 0.0))
    assert tuple(ring[16, 16]) == ground and tuple(on_white[16, 16]) == WHITE
    band = ring[16, 7].astype(int)   # in the ring itself: its own colour
    assert np.abs(band - (220, 40, 40)).max() < 30 and np.abs(on_white[16, 7].astype(int) - band).max() < 30
