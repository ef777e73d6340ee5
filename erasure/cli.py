"""What every stage CLI shares: --config or --params, thread count, and one-line errors."""
import argparse
import json
import os
import sys
from typing import Callable

from . import io
from .config import load_config
from .errors import ConfigError, DiskFull
from .prompts import prompt_table, read_prompt_csv


def parser(description: str, config_required: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=config_required)
    src.add_argument("--config", action="append",
                     help="pipeline config YAML (repeatable: merged over config.yaml in order, as Snakemake's "
                          "--configfile; the stage derives its parameters from it)")
    src.add_argument("--params", help="the stage's parameters as JSON, or @FILE (what the Snakefile passes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: oversubscribing is slow)")
    p.add_argument("--print-params", action="store_true",
                   help="print the parameters the stage would run with (JSON, as the Snakefile passes them) and exit")
    return p


def stage_params(args: argparse.Namespace, derive: Callable[..., dict], *wildcards: str) -> dict:
    """The stage's parameter dict, from --params or derived from --config via `derive`; with
    --print-params, printed instead and the stage ends here."""
    if args.params is not None:
        text = args.params
        if text.startswith("@"):
            text = open(text[1:], encoding="utf-8").read()
        try:
            params = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--params: not valid JSON ({e}); pass the stage's parameter dict or @FILE") from None
    else:
        params = derive(load_config(args.config), *wildcards)
    if args.print_params:
        print(json.dumps(params, sort_keys=True))
        sys.exit(0)
    return params


def edit_stage(description: str, derive: Callable[..., dict],
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[argparse.Namespace, dict]:
    """(arguments, parameters) of a stage that writes one method's edit of one concept: --method, --concept,
    --out and whatever `extra` adds; the torch threads set, the parameters derived from (method, concept)."""
    p = parser(description)
    p.add_argument("--method", required=True)
    p.add_argument("--concept", required=True, help="erased concept (slug)")
    p.add_argument("--out", required=True, help="the edit file to write (.safetensors)")
    if extra:
        extra(p)
    args = p.parse_args()
    set_threads(args.threads)
    return args, stage_params(args, derive, args.method, args.concept)


def add_prompts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", help="prompts CSV (id, concept, kind, prompt, seed); default: built from --config")


def read_prompts(args: argparse.Namespace) -> list[dict]:
    """Evaluation prompt rows from --prompts, or built from --config."""
    if args.prompts:
        return read_prompt_csv(args.prompts)
    if not args.config:
        raise ValueError("--prompts is required with --params")
    return prompt_table(load_config(args.config))


def add_attacked_model_args(p: argparse.ArgumentParser) -> None:
    """An attack stage's model (a method's edit for one erased concept) and its artefact directory."""
    p.add_argument("--method", required=True, help="the attacked method (original: the unedited model)")
    p.add_argument("--concept", required=True, help="erased concept (slug)")
    p.add_argument("--deltas", help="the method's weight deltas (.safetensors)")
    p.add_argument("--lora", help="the method's LoRA directory")
    p.add_argument("--out-dir", required=True)


def set_threads(n: int) -> None:
    import torch
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); a known bad input ends with one line on stderr and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        main()
    except (ConfigError, FileNotFoundError, ValueError, KeyError, NotImplementedError, DiskFull) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e.strerror if isinstance(e, DiskFull) else e
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:
        if not io.out_of_space(e):
            raise
        # A write outside io's atomic helpers (a library's own save) ran out of space.
        print(f"error: {io.disk_full(getattr(e, 'filename', None) or '.').strerror}", file=sys.stderr)
        sys.exit(2)


def progress(message: str) -> None:
    print(message, flush=True)
