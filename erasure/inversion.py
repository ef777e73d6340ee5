"""Concept inversion (Pham et al., "Circumventing Concept Erasure Methods", arXiv 2308.01508).

Textual inversion against an erased model: learn the input embeddings v [n_vectors, D] of new tokens
"<c-0> <c-1> ..." so that the erased UNet, conditioned on a template filled with them, denoises images
of the concept that the unedited model drew:

    min_v  E_{x0, t, noise, template} || eps_erased(x_t, t, E(template(<c-0>...), v)) - noise ||^2

with everything but v frozen (E: the text encoder; gradients reach v through it). The learned tokens
are then drawn in the attack's templates ("a <c-0>", ...). Differences from the reference code (the
authors' diffusers textual-inversion script): v starts from a neutral word's embedding (`init_word`,
default "object"), never from the concept's own word, so a found concept owes nothing to its name;
templates are the attack's evaluation templates rather than the ImageNet-style list, so that training
and evaluation prompts match in the mini world whose captions are short.
"""
from typing import Iterator

import torch

from . import placeholders
from .progress import Progress
from .sampling import noised_batch, predict_noise
from .text import TextEncoder


def token_names(concept_slug: str, n_vectors: int) -> list[str]:
    return [f"<{concept_slug}-inv-{i}>" for i in range(n_vectors)]


def initial_vectors(encoder: TextEncoder, init_word: str, n_vectors: int) -> torch.Tensor:
    """[n_vectors, D] copies of `init_word`'s input embedding (its first token's)."""
    if not encoder._content_ids(init_word):
        raise ValueError(f"attacks.inversion.init_word {init_word!r} has no tokens; give a plain word")
    return placeholders.word_embeddings(encoder, [init_word]).expand(n_vectors, -1).clone()


def train(unet: torch.nn.Module, encoder: TextEncoder, train_scheduler, z0: torch.Tensor, templates: list[str],
          tokens: list[str], vectors: torch.nn.Parameter, opt: torch.optim.Optimizer, cfg: dict,
          gen: torch.Generator, start_step: int = 0) -> Iterator[tuple[int, float]]:
    """Optimizer steps start_step+1 .. cfg["steps"] on `vectors` (installed for `tokens`); yields (step, loss).

    z0: [N, *latent] target latents (the unedited model's images of the concept). The UNet runs in its
    own dtype and device; the loss is taken in float32; every random draw comes from `gen` on the CPU.
    """
    phrase = " ".join(tokens)
    bar = Progress(cfg["steps"], "inversion", every=20, initial=start_step, unit="steps")
    for step in range(start_step + 1, cfg["steps"] + 1):
        b = cfg["batch_size"]
        xt, target, t = noised_batch(z0, b, train_scheduler, gen)
        picks = torch.randint(len(templates), (b,), generator=gen).tolist()
        cond = encoder.encode_with_grad([templates[i].format(phrase) for i in picks])
        eps = predict_noise(unet, xt, t, cond)
        loss = torch.nn.functional.mse_loss(eps, target.to(eps.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(loss=loss.item())
        yield step, loss.item()
    bar.close()


def install_trainable(encoder: TextEncoder, tokens: list[str], init: torch.Tensor) -> torch.nn.Parameter:
    """A trainable [n, D] parameter installed as `tokens`' input embeddings."""
    vectors = torch.nn.Parameter(init.clone())
    placeholders.install(encoder, tokens, vectors)
    return vectors
