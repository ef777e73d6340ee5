"""Neighbour-concept mining and beyond-concept samples (RealEra, arXiv 2410.09140, Alg. 1).

All sampling is vectorised over copies and tokens. Radii are given relative to the mean token norm
of the erased span, so the same settings carry over between MiniLM (384-d) and CLIP (768-d).

Samplers (the direction a perturbation takes before its radius is applied):
  paper: from the token e toward a standard normal draw g: u = (g - e) / |g - e|   (Alg. 1, l. 4-12)
  data:  a Gaussian draw inside the principal subspace of a prompt bank's token embeddings, scaled by
         each component's spread, so perturbations move the way real prompts vary.
"""
import torch

from .text import TextEncoder


def edit_span(encoder: TextEncoder, prompt: str, word: str, causal: bool) -> int:
    """First token position of the edited span. A causal encoder (CLIP) hides the concept from the
    tokens before it, so the span starts at the concept word; a bidirectional one (MiniLM) spreads it
    over every token, so the whole sequence is edited."""
    start, _ = encoder.token_span(prompt, word)
    return start if causal else 0


def anchor_span_start(encoder: TextEncoder, anchor: str, causal: bool) -> int:
    """First token position of the anchor's span: after the start token for a causal encoder."""
    if not causal:
        return 0
    ids = encoder.tokenize([anchor])["input_ids"][0].tolist()
    return 1 if ids and ids[0] in encoder.tokenizer.all_special_ids else 0


def clean_rows(encoder: TextEncoder, prompts: list[str], word: str, anchor: str,
               causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase-span tokens of each prompt paired with the anchor's tokens: [N, D], [N, D] (no mining)."""
    emb = encoder.encode_tokens(list(prompts) + [anchor])
    a_start = anchor_span_start(encoder, anchor, causal)
    pairs = [align(emb[i], emb[-1], edit_span(encoder, p, word, causal), a_start) for i, p in enumerate(prompts)]
    return torch.cat([e for e, _ in pairs]), torch.cat([a for _, a in pairs])


def align(erase_tokens: torch.Tensor, anchor_tokens: torch.Tensor, erase_start: int,
          anchor_start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair erase-span tokens with anchor tokens position by position from each span's start.

    erase_tokens, anchor_tokens: [L, D]. Returns two [n, D] tensors with n = the shorter span.
    """
    n = min(erase_tokens.shape[0] - erase_start, anchor_tokens.shape[0] - anchor_start)
    return erase_tokens[erase_start:erase_start + n], anchor_tokens[anchor_start:anchor_start + n]


def principal_directions(bank_tokens: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k principal directions of token embeddings [N, D], scaled by their standard deviation: [k, D]."""
    x = bank_tokens - bank_tokens.mean(0)
    _, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    return (vh[:k] * (s[:k, None] / (len(x) - 1) ** 0.5)).float()


def _directions(e, count, gen, basis):
    """Unit directions [count, T, D] for tokens e [T, D]."""
    if basis is None:
        g = torch.randn(count, *e.shape, generator=gen)
        d = g - e
    else:
        z = torch.randn(count, e.shape[0], basis.shape[0], generator=gen)
        d = z @ basis
    return d / d.norm(dim=-1, keepdim=True)


def perturb(e: torch.Tensor, count: int, r_min: float, r_max: float, cos_min: float, cos_max: float,
            gen: torch.Generator, basis: torch.Tensor | None = None, batch: int | None = None,
            max_rounds: int = 50) -> tuple[torch.Tensor, dict]:
    """`count` perturbed copies of tokens e [T, D] with every token's |delta| in [r_min, r_max) and
    cos(e, e + delta) in [cos_min, cos_max].

    Each token position is rejection-sampled on its own (a copy is one accepted draw per position),
    vectorised over draws. Returns (samples [count, T, D], stats dict); raises ValueError when the
    constraints accept too few.
    """
    batch = batch or max(4 * count, 64)
    n_tokens = e.shape[0]
    kept = [[] for _ in range(n_tokens)]
    drawn = 0
    for _ in range(max_rounds):
        u = _directions(e, batch, gen, basis)
        r = r_min + (r_max - r_min) * torch.rand(batch, n_tokens, 1, generator=gen)
        x = e + r * u                                                              # [batch, T, D]
        cos = torch.nn.functional.cosine_similarity(x, e.expand_as(x), dim=-1)     # [batch, T]
        ok = (cos >= cos_min) & (cos <= cos_max)
        drawn += batch
        for t in range(n_tokens):
            kept[t].append(x[ok[:, t], t])
        if min(sum(len(k) for k in per_t) for per_t in kept) >= count:
            break
    per_token = [torch.cat(k) for k in kept]
    accepted = sum(len(k) for k in per_token)
    fewest = min(len(k) for k in per_token)
    if fewest < count:
        raise ValueError(f"mining accepted {fewest} of {count} requested samples for some token after {drawn} draws "
                         f"(radius [{r_min:.3g}, {r_max:.3g}), cosine [{cos_min}, {cos_max}]): "
                         "widen the cosine window or change the radius in the mining config")
    samples = torch.stack([k[:count] for k in per_token], dim=1)                  # [count, T, D]
    return samples, _stats(e, samples, count, drawn * n_tokens, accepted)


def _stats(e, samples, requested, drawn, accepted):
    dist = (samples - e).norm(dim=-1).flatten()
    cos = torch.nn.functional.cosine_similarity(samples, e.expand_as(samples), dim=-1).flatten()
    summary = lambda v: {"min": round(v.min().item(), 5), "mean": round(v.mean().item(), 5),
                         "max": round(v.max().item(), 5)}
    return {"requested": requested, "drawn": drawn, "accepted": accepted,
            "acceptance_rate": round(accepted / drawn, 5), "distance": summary(dist), "cosine": summary(cos)}


def mine(erase: torch.Tensor, anchor: torch.Tensor, cfg: dict, seed: int,
         basis: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """One embedding set for one erase/anchor pair of aligned token spans [T, D].

    cfg: num_neighbors (M), num_beyond (N), d1, d1_anchor, d2 (relative to the mean token norm of
    `erase`), s1, s2. Returns the tensors and the statistics for the sidecar.
    """
    gen = torch.Generator().manual_seed(seed)
    norm = erase.norm(dim=-1).mean().item()
    d1, d1a, d2 = cfg["d1"] * norm, cfg["d1_anchor"] * norm, cfg["d2"] * norm
    neighbors, n_stats = perturb(erase, cfg["num_neighbors"], 0.0, d1, cfg["s2"], cfg["s1"], gen, basis)
    anchors, a_stats = perturb(anchor, cfg["num_neighbors"], 0.0, d1a, cfg["s2"], cfg["s1"], gen, basis)
    beyond, b_stats = perturb(erase, cfg["num_beyond"], d1, d2, -1.0, cfg["s2"], gen, basis)
    stats = {"token_norm": round(norm, 5), "d1_abs": round(d1, 5), "d1_anchor_abs": round(d1a, 5),
             "d2_abs": round(d2, 5), "neighbors": n_stats, "anchors": a_stats, "beyond": b_stats}
    return {"neighbors": neighbors, "anchors": anchors, "beyond": beyond}, stats


def project_out(samples: torch.Tensor, erase: torch.Tensor) -> torch.Tensor:
    """Remove from every sample token its component along the matching erase token.

    samples [N, T, D], erase [T, D]. A beyond-concept sample that keeps a component along e asks the
    edit to keep e where it was, which undoes the erasure; its orthogonal part cannot.
    """
    unit = erase / erase.norm(dim=-1, keepdim=True)
    return samples - (samples * unit).sum(-1, keepdim=True) * unit
