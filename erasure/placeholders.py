"""Placeholder tokens: new words whose input embeddings are vectors we choose (textual inversion).

An attack learns a vector v in the text encoder's input-embedding space and names it with a new token
such as "<heart-inv-0>". The tokenizer learns the word; a forward hook on the input-embedding layer
puts v wherever the token's id appears, so "a <heart-inv-0>" is encoded by the unchanged encoder with v
at that position. The same hook serves training (v requires grad) and drawing (v loaded from a file),
and works for both MiniLM (BERT) and CLIP, whose embedding layers are plain nn.Embedding lookups.

File format (safetensors): {token string: vector [D]}, the vectors in float32.
"""
from pathlib import Path

import torch
from safetensors.torch import load_file

from .text import TextEncoder


def add_tokens(encoder: TextEncoder, names: list[str]) -> list[int]:
    """Teach the tokenizer `names` as whole words; returns their ids. The embedding table grows to
    cover them (their rows are never read: the hook replaces them)."""
    clash = [n for n in names if len(encoder.tokenizer.tokenize(n)) == 1 and n not in encoder.tokenizer.get_added_vocab()]
    if clash:
        raise ValueError(f"placeholder token {clash[0]!r} is already a word of the tokenizer; pick another name")
    encoder.tokenizer.add_tokens(names)
    ids = encoder.tokenizer.convert_tokens_to_ids(names)
    table = encoder.model.get_input_embeddings()
    if max(ids) >= table.num_embeddings:
        encoder.model.resize_token_embeddings(len(encoder.tokenizer))
    return ids


def install(encoder: TextEncoder, tokens: list[str], vectors: torch.Tensor) -> torch.utils.hooks.RemovableHandle:
    """Make tokens[i] encode as vectors[i] ([n, D]). The tensor is read at every forward, so a trained
    parameter's updates (and its gradient) pass through. Returns the hook's handle (`.remove()` undoes it)."""
    ids = add_tokens(encoder, tokens)
    layer = encoder.model.get_input_embeddings()

    def replace(module, inputs, output):
        for i, token_id in enumerate(ids):
            mask = (inputs[0] == token_id).unsqueeze(-1)
            if mask.any():
                output = torch.where(mask, vectors[i].to(output.device, output.dtype), output)
        return output

    return layer.register_forward_hook(replace)


def save(path: str | Path, tokens: list[str], vectors: torch.Tensor, metadata: dict | None = None) -> None:
    from . import io
    io.save_safetensors({t: v.detach().float().cpu().contiguous() for t, v in zip(tokens, vectors)}, path, metadata)


def load(path: str | Path, dim: int) -> tuple[list[str], torch.Tensor]:
    """(tokens, vectors [n, D]) from `path`, checked against the encoder's width `dim`."""
    vectors = load_file(path)
    for name, v in vectors.items():
        if v.shape != (dim,):
            raise ValueError(f"{path}: token {name!r} has shape {tuple(v.shape)}, the text encoder's input "
                             f"embeddings are [{dim}]; the file was made for another world")
    if not vectors:
        raise ValueError(f"{path}: no tokens in the file; rerun the attack that writes it")
    return list(vectors), torch.stack(list(vectors.values()))


def input_dim(encoder: TextEncoder) -> int:
    return encoder.model.get_input_embeddings().embedding_dim
