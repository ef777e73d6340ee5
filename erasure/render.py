"""Procedural renderer of the mini world's shapes (32x32 RGB, random colour, size, position, rotation)."""
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "heart", "crescent", "ring")

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 50, 180),
    "orange": (240, 130, 20),
}

SUPERSAMPLE = 64  # draw at 64 px, then downsample: smooth edges at 32 px


def _rotate(points, angle, cx, cy):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in points]


def _polygon(shape, r):
    """Outline of a filled shape centred at 0, radius r (before rotation)."""
    if shape == "square":
        a = r * 0.8
        return [(-a, -a), (a, -a), (a, a), (-a, a)]
    if shape == "triangle":
        return [(r * math.cos(t), r * math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            t = -math.pi / 2 + k * math.pi / 5
            pts.append((rad * math.cos(t), rad * math.sin(t)))
        return pts
    if shape == "cross":
        a, b = r, r * 0.32
        return [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a),
                (-b, b), (-a, b), (-a, -b), (-b, -b)]
    if shape == "heart":
        pts = []
        for k in range(60):
            t = 2 * math.pi * k / 60
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((x * r / 17, -y * r / 17 + r * 0.1))
        return pts
    raise ValueError(f"no polygon for shape {shape!r}")


WHITE = (255, 255, 255)


def render(shape: str, colour: tuple[int, int, int], radius: float, cx: float, cy: float, angle: float,
           size: int = 32, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Draw one shape on a plain background (white unless given; a ring's or crescent's hole shows it);
    geometry is in units of the image side (0..1)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    S = SUPERSAMPLE
    img = Image.new("RGB", (S, S), background)
    draw = ImageDraw.Draw(img)
    r, x0, y0 = radius * S, cx * S, cy * S
    if shape == "circle":
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
    elif shape == "ring":
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
        ri = r * 0.55
        draw.ellipse([x0 - ri, y0 - ri, x0 + ri, y0 + ri], fill=background)
    elif shape == "crescent":
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=colour)
        dx, dy = _rotate([(r * 0.5, -r * 0.2)], angle, 0, 0)[0]
        ri = r * 0.85
        draw.ellipse([x0 + dx - ri, y0 + dy - ri, x0 + dx + ri, y0 + dy + ri], fill=background)
    else:
        draw.polygon(_rotate(_polygon(shape, r), angle, x0, y0), fill=colour)
    return img.resize((size, size), Image.LANCZOS)


def random_params(rng: np.random.Generator, shape: str | None = None) -> dict:
    """Draw shape parameters: colour (+-25 jitter), radius 0.24-0.40, position keeping the shape inside."""
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    name = list(COLOURS)[rng.integers(len(COLOURS))]
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[name])
    radius = rng.uniform(0.24, 0.40)
    cx, cy = rng.uniform(radius, 1 - radius, size=2)
    angle = rng.uniform(-0.25, 0.25)
    return dict(shape=shape, colour_name=name, colour=colour, radius=radius, cx=cx, cy=cy, angle=angle)


def render_batch(n: int, seed: int, shapes: tuple[str, ...] = SHAPES,
                 coloured: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n random renders: uint8 array [n, 32, 32, 3], shape index per image, colour name per image.
    coloured: the share drawn on a random background colour (at least MIN_CONTRAST from the shape's)
    instead of white, from a generator of their own, so the shapes stay those of coloured=0."""
    rng = np.random.default_rng(seed)
    grounds = np.random.default_rng([seed, 1])
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    colours = []
    for i in range(n):
        p = random_params(rng, shapes[rng.integers(len(shapes))])
        background = random_background(grounds, p["colour"]) if coloured and grounds.random() < coloured else WHITE
        images[i] = np.asarray(render(p["shape"], p["colour"], p["radius"], p["cx"], p["cy"], p["angle"],
                                      background=background))
        labels[i] = SHAPES.index(p["shape"])
        colours.append(p["colour_name"])
    return images, labels, colours


MIN_CONTRAST = 120.0   # RGB distance between a shape's colour and a coloured background


def random_background(rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """A uniform random RGB colour at least MIN_CONTRAST away from the shape's, so the shape stays visible."""
    while True:
        ground = rng.integers(0, 256, size=3)
        if np.linalg.norm(ground - np.array(colour)) >= MIN_CONTRAST:
            return tuple(int(c) for c in ground)