"""Erase prompts the text encoder would cut before their concept word.

Such a prompt draws the same images as one without the concept, so its Acc_e would mean nothing. The
check needs only the world's tokenizer; it is its own module so that the many rules whose code imports
erasure.prompts do not also depend on the world and text-encoder code it loads."""
from pathlib import Path

from .errors import ConfigError
from .prompts import dataset_prompt_files, prompt_table
from .text import cuts_word


def check_lengths(rows: list[dict], tokenizer, max_length: int) -> None:
    """One line naming the first erase prompt whose concept word falls past the cut."""
    for row in rows:
        n = cuts_word(tokenizer, max_length, row["prompt"], row["concept"]) if row["kind"] == "erase" else None
        if n is not None:
            raise ConfigError(f"erase prompt {row['prompt']!r} (id {row['id']}) is {n} tokens and the text "
                              f"encoder keeps {max_length}: the concept word {row['concept']!r} falls past the "
                              "cut; shorten the prompt (prompt_template, or its row in the extra prompt CSV)")


def check_run(config: dict) -> None:
    """check_lengths for every prompt of a checked config, with only the world's tokenizer loaded
    (a few seconds: the Snakefile runs it once, when a run starts, not at every DAG build)."""
    from .world import load_tokenizer
    datasets = all(Path(p).is_file() for p in dataset_prompt_files(config))
    check_lengths(prompt_table(config, datasets=datasets), *load_tokenizer(config))
