"""Placeholder tokens: new words whose input embeddings are vectors we choose (textual inversion).

An attack learns a vector v in the text encoder's input-embedding space and names it with a new token
such as "<heart-inv-0>". The tokenizer learns the word; a forward hook on the input-embedding layer
puts v wherever the token's id appears, so "a <heart-inv-0>" is encoded by the unchanged encoder with v
at that position. The same hook serves training (v requires grad) and drawing (v loaded from a file),
and works for both MiniLM (BERT) and CLIP, whose embedding layers are plain nn.Embedding lookups.
SDXL has two text encoders: there v is the two input embeddings side by side ([768 + 1280]), each
encoder's tokenizer learns the word, and each encoder reads its own part (`encoder.input_tables()`).

File format (safetensors): {token string: vector [D]}, the vectors in float32.
"""
from pathlib import Path

import torch
from safetensors.torch import load_file

from .text import TextEncoder, content_ids


def add_tokens(tokenizer, model: torch.nn.Module, names: list[str]) -> list[int]:
    """Teach one tokenizer `names` as whole words; returns their ids. The model's embedding table grows
    to cover them (their rows are never read: the hook replaces them)."""
    clash = [n for n in names if len(tokenizer.tokenize(n)) == 1 and n not in tokenizer.get_added_vocab()]
    if clash:
        raise ValueError(f"placeholder token {clash[0]!r} is already a word of the tokenizer; pick another name")
    tokenizer.add_tokens(names)
    ids = tokenizer.convert_tokens_to_ids(names)
    if max(ids) >= model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return ids


class Handles:
    """The forward hooks of one install, removed together."""

    def __init__(self, handles: list):
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def install(encoder: TextEncoder, tokens: list[str], vectors: torch.Tensor) -> Handles:
    """Make tokens[i] encode as vectors[i] ([n, D], D = input_dim(encoder)). The tensor is read at every
    forward, so a trained parameter's updates (and its gradient) pass through. Returns the hooks'
    handles (`.remove()` undoes them)."""
    handles, start = [], 0
    for tokenizer, model in encoder.input_tables():
        ids = add_tokens(tokenizer, model, tokens)
        layer = model.get_input_embeddings()
        part = slice(start, start + layer.embedding_dim)
        start = part.stop

        def replace(module, inputs, output, ids=ids, part=part):
            for i, token_id in enumerate(ids):
                mask = (inputs[0] == token_id).unsqueeze(-1)
                if mask.any():
                    output = torch.where(mask, vectors[i][part].to(output.device, output.dtype), output)
            return output

        handles.append(layer.register_forward_hook(replace))
    return Handles(handles)


def word_embeddings(encoder: TextEncoder, words: list[str]) -> torch.Tensor:
    """[len(words), D] input embeddings of each word's first token, every input table side by side."""
    rows = [model.get_input_embeddings().weight[[content_ids(tokenizer, w)[0] for w in words]]
            for tokenizer, model in encoder.input_tables()]
    return torch.cat(rows, dim=-1).detach().float()


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
    return sum(model.get_input_embeddings().embedding_dim for _, model in encoder.input_tables())
