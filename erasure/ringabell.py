"""Ring-A-Bell (Tsai et al., ICLR 2024, arXiv 2310.10012): adversarial prompts from the text encoder alone.

1. Concept direction: c = mean_i [E(p_i with the concept) - E(p_i without it)] over prompt pairs, E the
   text encoder's token embeddings [L, D] (what the UNet's cross-attention reads).
2. Target: E(neutral prompt) + eta * c.
3. A genetic search over prompts of `length` words for the one whose E is nearest the target
   (mean squared error). No UNet is involved, so one search serves every method (the erasers here edit
   the UNet only, never the text encoder).

Differences from the reference code (the authors' notebook): words are drawn from the tokenizer's
whole-word vocabulary minus the concept's own names, so a found prompt never contains the erased word
and decodes to the same tokens it was scored with; the pairs are the attack's templates filled with
the concept's names and with nothing (the reference reads 50 hand-written pairs per concept); the
population, generations and mutation rate are config values (the reference: 200, 3000, 0.25).
"""
import re

import torch

from .progress import Progress
from .text import TextEncoder, content_ids

SPACE = "\u2581"   # sentencepiece's word-start mark


def concept_direction(encoder: TextEncoder, names: list[str], templates: list[str]) -> torch.Tensor:
    """c [L, D]: mean embedding difference over (template with a name, template with no name)."""
    with_concept = [t.format(n) for t in templates for n in names]
    without = [" ".join(t.format("").split()) for t in templates for _ in names]
    return (encoder.encode(with_concept) - encoder.encode(without)).mean(0)


def word_vocabulary(encoder: TextEncoder, banned: list[str]) -> list[str]:
    """Whole words of the tokenizer (alphabetic, 3+ letters) that are not in `banned` (the concept's
    names and their words): every one tokenizes back to itself."""
    vocab = encoder.tokenizer.get_vocab()
    clip = any(t.endswith("</w>") for t in vocab)  # CLIP marks a word's last piece with </w>
    pieces = any(t.startswith(SPACE) for t in vocab)  # sentencepiece (T5) marks a word's first piece with ▁
    words = set()
    for token in vocab:
        if (clip and not token.endswith("</w>")) or (pieces and not token.startswith(SPACE)):
            continue  # a piece inside a longer word
        word = token.removesuffix("</w>").removeprefix(SPACE)
        if re.fullmatch(r"[a-z]{3,}", word):
            words.add(word)
    if pieces:   # a word's first piece may also start longer words: keep the words that are one piece alone
        words = {w for w in words if len(content_ids(encoder.tokenizer, w)) == 1}
    bad = {w for b in banned for w in re.findall(r"[a-z]{3,}", b.lower())}
    return sorted(w for w in words if not any(b in w for b in bad))


def search(encoder: TextEncoder, target: torch.Tensor, vocabulary: list[str], cfg: dict,
           gen: torch.Generator) -> list[tuple[str, float]]:
    """Genetic search: the population's best `prompts` distinct prompts with their distance to `target`.

    Each generation keeps the best half (elitism), then refills the population with children of two
    parents from that half: one-point crossover, then each word replaced at random with probability
    `mutation`. Every draw comes from `gen`, so a seed gives one result.
    """
    n, length = cfg["population"], cfg["length"]
    vocab = torch.tensor(range(len(vocabulary)))
    population = vocab[torch.randint(len(vocab), (n, length), generator=gen)]

    def fitness(pop):
        texts = [" ".join(vocabulary[i] for i in row) for row in pop.tolist()]
        return ((encoder.encode(texts) - target) ** 2).mean(dim=(1, 2))

    bar = Progress(cfg["generations"], "ring-a-bell", every=20, unit="generations")
    loss = fitness(population)
    for generation in range(1, cfg["generations"] + 1):
        order = loss.argsort()
        elite, elite_loss = population[order[: n // 2]], loss[order[: n // 2]]
        k = n - len(elite)
        mothers = elite[torch.randint(len(elite), (k,), generator=gen)]
        fathers = elite[torch.randint(len(elite), (k,), generator=gen)]
        cut = torch.randint(1, length, (k, 1), generator=gen) if length > 1 else torch.zeros(k, 1, dtype=torch.long)
        children = torch.where(torch.arange(length) < cut, mothers, fathers)
        mutate = torch.rand(k, length, generator=gen) < cfg["mutation"]
        children = torch.where(mutate, vocab[torch.randint(len(vocab), (k, length), generator=gen)], children)
        population = torch.cat([elite, children])
        loss = torch.cat([elite_loss, fitness(children)])
        bar.update(best_distance=loss.min().item())
    bar.close()
    best, seen = [], set()
    for i in loss.argsort().tolist():
        text = " ".join(vocabulary[j] for j in population[i].tolist())
        if text not in seen:
            seen.add(text)
            best.append((text, loss[i].item()))
        if len(best) == cfg["prompts"]:
            break
    return best
