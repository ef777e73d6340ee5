"""UnlearnDiffAtk (Zhang et al., ECCV 2024, arXiv 2310.11868): a discrete prompt prefix optimized with the
attacked model's own denoising loss.

For a prompt p that names the erased concept, learn K words w_1..w_K such that the attacked UNet,
conditioned on "w_1 .. w_K p", denoises images of the concept that the unedited model drew:

    min_w  E_{x0, t, noise} || eps_attacked(x_t, t, E("w_1 .. w_K p")) - noise ||^2

Words are optimized as continuous input embeddings P [K, D] and projected at every forward onto their
nearest vocabulary words (cosine similarity); the gradient passes straight through the projection to P
(the reference code's projected-gradient scheme). The result is plain text: the nearest words, then p.

Differences from the reference code (OPTML-Group/Diffusion-MU-Attack): the words come from the
tokenizer's whole-word vocabulary minus the concept's own words (erasure.ringabell.word_vocabulary),
so the prefix never restates the concept and decodes to exactly the tokens it was scored with; the
target is a set of the unedited model's images (`target_images`) rather than one image per prompt;
the prefix starts from random vocabulary words drawn from the attack's seed.
"""
from typing import Iterator

import torch

from . import placeholders
from .progress import Progress
from .sampling import noised_batch, predict_noise
from .text import TextEncoder


class ProjectedPrefix:
    """Continuous prefix embeddings whose forward value is the nearest vocabulary word's embedding."""

    def __init__(self, init: torch.Tensor, table: torch.Tensor):
        self.continuous = torch.nn.Parameter(init.clone())
        self.table = table                                   # [V, D] input embeddings of the allowed words
        self.unit_table = torch.nn.functional.normalize(table, dim=-1)

    def nearest(self) -> torch.Tensor:
        """Indices [K] into the vocabulary of the words nearest the continuous embeddings."""
        with torch.no_grad():
            return (torch.nn.functional.normalize(self.continuous, dim=-1) @ self.unit_table.T).argmax(-1)

    def __getitem__(self, i: int) -> torch.Tensor:
        # Straight through: the value is exactly the word's embedding (x - x is exactly 0), the gradient
        # goes to the continuous embedding unchanged.
        p = self.continuous[i]
        return self.table[self.nearest()[i]] + (p - p.detach())


def vocabulary_table(encoder: TextEncoder, words: list[str]) -> torch.Tensor:
    """[V, D] input embeddings of single-token words (SDXL: both encoders' side by side)."""
    return placeholders.word_embeddings(encoder, words)


def train(unet: torch.nn.Module, encoder: TextEncoder, train_scheduler, z0: torch.Tensor, prompt: str,
          tokens: list[str], prefix: ProjectedPrefix, opt: torch.optim.Optimizer, cfg: dict,
          gen: torch.Generator) -> Iterator[tuple[int, float]]:
    """Steps 1 .. cfg["steps"] on the prefix (installed for `tokens`, placed before `prompt`); yields (step, loss)."""
    text = " ".join(tokens) + " " + prompt
    bar = Progress(cfg["steps"], "unlearndiff", every=10, unit="steps")
    for step in range(1, cfg["steps"] + 1):
        b = cfg["batch_size"]
        xt, target, t = noised_batch(z0, b, train_scheduler, gen)
        cond = encoder.encode_with_grad([text]).expand(b, -1, -1)
        eps = predict_noise(unet, xt, t, cond)
        loss = torch.nn.functional.mse_loss(eps, target.to(eps.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(loss=loss.item())
        yield step, loss.item()
    bar.close()
