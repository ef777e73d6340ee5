"""The mini world's oracle: a small CNN that names the shape in an image, or rejects it ("none").

It is trained on what the model really draws, not only on clean renders: renders pushed through the
model (noised to a random timestep, denoised back under their own caption) and renders degraded by
blur, tint and noise, plus a reject class of shapes that are none of the concepts (irregular blobs,
shapes cut off by the border), so a destroyed shape never counts as a concept. Empty or noisy
canvases are not in the reject class: the model's samples have tinted, noisy backgrounds, and an
oracle that learned "noisy background = none" rejected well-drawn shapes.
"""
import math
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from .render import COLOURS, SHAPES, random_params, render

LABELS = SHAPES + ("none",)
REJECT = len(SHAPES)

class Oracle(nn.Module):
    def __init__(self, n_classes=len(LABELS)):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(3, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2),
                                      block(64, 96), nn.MaxPool2d(2), block(96, 128))
        self.head = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 3, 32, 32] in [-1, 1] -> logits [B, 9]."""
        return self.head(self.features(x).mean(dim=(2, 3)))


@torch.inference_mode()
def classify(oracle: torch.nn.Module, images: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Label index per image (REJECT for "none") and the softmax probabilities [B, 9]."""
    probs = torch.cat([oracle(images[i:i + batch_size]).softmax(-1) for i in range(0, len(images), batch_size)])
    return probs.argmax(-1), probs


def blob(rng: np.random.Generator, colour: tuple[int, int, int]) -> Image.Image:
    """An irregular blob (a polygon of random radii around a centre), 32 x 32 on white."""
    img = Image.new("RGB", (64, 64), (255, 255, 255))
    k = int(rng.integers(5, 10))
    cx, cy = rng.uniform(20, 44, size=2)
    angles = np.sort(rng.uniform(0, 2 * math.pi, k))
    radii = rng.uniform(4, 22, k)
    ImageDraw.Draw(img).polygon([(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)],
                                fill=colour)
    return img.resize((32, 32), Image.LANCZOS)


def blob_renders(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """n irregular blobs in the named colours: uint8 [n, 32, 32, 3] and each one's colour name (the UNet's
    none class: a prompt the model draws as none of the concepts, for an anchor)."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    out, colours = np.empty((n, 32, 32, 3), dtype=np.uint8), []
    for i in range(n):
        name = names[rng.integers(len(names))]
        out[i] = np.asarray(blob(rng, tuple(int(c) for c in COLOURS[name])))
        colours.append(name)
    return out, colours


def reject_images(n: int, seed: int) -> np.ndarray:
    """Images that show none of the concepts: irregular blobs and shapes cut off by the border."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        kind = rng.integers(2)
        colour = tuple(int(c) for c in list(COLOURS.values())[rng.integers(len(COLOURS))])
        if kind == 0:  # irregular blob: random radii around a centre
            img = blob(rng, colour)
        else:  # a shape mostly outside the canvas
            p = random_params(rng)
            img = render(p["shape"], p["colour"], p["radius"], 0.5, 0.5, p["angle"])
            dx, dy = rng.choice([-1, 1], size=2) * rng.integers(20, 27, size=2)
            canvas = Image.new("RGB", (32, 32), (255, 255, 255))
            canvas.paste(img, (int(dx), int(dy)))
            img = canvas
        out[i] = np.asarray(img)
    return out


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur, background tint and pixel noise of random strength; x: [B, 3, 32, 32] in [-1, 1]."""
    b = len(x)
    tint = (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 0.4 * (torch.rand(b, 1, 1, 1, generator=gen) < 0.5)
    noise = torch.randn(x.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * 0.15
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    mix = torch.rand(b, 1, 1, 1, generator=gen) * (torch.rand(b, 1, 1, 1, generator=gen) < 0.3)
    x = x * (1 - mix) + blurred * mix
    return (x + tint + noise).clamp(-1, 1)


def train_oracle(train_x: torch.Tensor, train_y: torch.Tensor, cfg: dict,
                 progress: Callable[[str], None] = print) -> "Oracle":
    """Train the CNN on prepared tensors; returns the model in eval mode."""
    gen = torch.Generator().manual_seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    model = Oracle()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    n = len(train_x)
    steps = cfg["epochs"] * math.ceil(n / cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=steps)
    t0 = time.time()
    for epoch in range(cfg["epochs"]):
        model.train()
        perm = torch.randperm(n, generator=gen)
        correct = 0
        for i in range(0, n, cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            x = augment(train_x[idx], gen)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += (logits.argmax(-1) == train_y[idx]).sum().item()
        progress(f"oracle epoch {epoch + 1}/{cfg['epochs']} train acc {100 * correct / n:.2f}% {time.time() - t0:.0f}s")
    return model.eval()
