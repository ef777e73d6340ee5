"""SepME stage: one cross-attention increment per known undesirable concept (erasure/sepme.py), then
the served edit = the sum of the chosen concepts' increments.

    # increments for a known set, and the deltas that erase all of them:
    python stages/sepme.py --config config.yaml --concepts heart --concepts crescent --increments-dir D --out all.safetensors
    # erase one more concept given an already-erased set (earlier increments stay as they are):
    python stages/sepme.py --config config.yaml --concepts circle --given D --increments-dir D
    # restore heart: rebuild the edit from the increments that stay (no retraining):
    python stages/sepme.py --increments-dir D --erase crescent --erase circle --out without_heart.safetensors

Each increment file (D/<concept>.safetensors) holds one D x D matrix, `delta`, shared by every layer;
its JSON sidecar has the settings (the model included) and the measured cross-talk onto every other
known concept's tokens. Composing sums the chosen matrices and only then makes the per-module deltas
W0 sum(Delta) (keyed by module name, like closed-form deltas), once.
"""
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from erasure import cli, io, params as stage_params, sepme
from erasure.closed_form import mixing_matrix, weight_deltas
from erasure.config import slug
from erasure.embedding_set import sidecar_path
from erasure.mining import clean_rows
from erasure.world import load_world_from_params


def main():
    p = cli.parser(__doc__, config_required=False)
    p.add_argument("--concepts", action="append", help="a concept to solve an increment for (repeatable)")
    p.add_argument("--given", help="directory of increments already erased (kept as they are)")
    p.add_argument("--increments-dir", required=True, help="where increments are written / read")
    p.add_argument("--erase", action="append", help="a concept whose increment the --out edit includes "
                                                    "(repeatable; default: every increment in the directory)")
    p.add_argument("--out", help="composed weight deltas (.safetensors) for the generate stage")
    p.add_argument("--joint", help="also write the non-separable comparison: one closed-form solve that "
                                   "erases every --concepts concept at once (.safetensors)")
    args = p.parse_args()
    cli.set_threads(args.threads)
    inc_dir = Path(args.increments_dir)
    modules = None
    if args.concepts or args.params:
        if not (args.config or args.params):
            raise ValueError("--concepts needs --config (or --params)")
        modules = solve(args, inc_dir)
    if args.out:
        write_composed(inc_dir, args.erase, args.out, modules)


def solve(args, inc_dir):
    prm = cli.stage_params(args, stage_params.sepme, args.concepts or [])
    concepts = args.concepts or prm["concepts"]
    if not concepts:
        raise ValueError("no concepts to solve: give --concepts")
    s = prm["sepme"]
    t0 = time.time()
    world = load_world_from_params(prm)
    modules = world.edit_modules()
    enc = world.encoder
    preserve = enc.encode(prm["preserve_prompts"]).flatten(0, 1)

    def concept_rows(c):   # the canonical prompt's span and the anchor's tokens
        return clean_rows(enc, [prm["prompt_template"].format(c)], c, prm["anchor"], world.causal_text)

    # 1. Rows of every concept being solved (span -> the anchor, or G-CiR targets).
    rows = {}
    for c in concepts:
        e, a = concept_rows(c)
        rows[c] = (e, sepme.cir_targets(e, a, preserve, s["cir_components"]))

    # 2. Concepts erased earlier: their tokens are kept; their increments are part of the current model.
    given = {}
    if args.given:
        for c, path in increment_files(args.given).items():
            if c not in rows:
                given[c] = (concept_rows(c)[0], load_delta(path))

    if args.joint:
        erase = torch.cat([e for e, _ in rows.values()])
        targets = torch.cat([t for _, t in rows.values()])
        m, _ = mixing_matrix(erase, targets, preserve, s["lam"], s["ridge"])
        io.save_safetensors(weight_deltas(modules, m), args.joint)
        io.write_json(sidecar_path(args.joint), {**prm, "joint": sorted(rows)})

    # 3. Solve; store each increment (one float64 D x D matrix) with its cross-talk onto the other
    #    known concepts' tokens.
    deltas = sepme.increments(rows, preserve, s["lam"], s["known_weight"], s["ridge"], given)
    known_rows = {**{c: r[0] for c, r in rows.items()}, **{c: g[0] for c, g in given.items()}}
    for c, delta in deltas.items():
        talk = {o: round(sepme.cross_talk(delta, known_rows[o]), 6) for o in known_rows if o != c}
        path = inc_dir / f"{slug(c)}.safetensors"
        io.save_safetensors({"delta": delta.contiguous()}, path)
        io.write_json(sidecar_path(path), {**prm, "concept": c, "known": sorted(known_rows),
                                           "cross_talk": talk, "wall_time_s": round(time.time() - t0, 3)})
        cli.progress(f"sepme {c}: increment written; largest cross-talk {max(talk.values(), default=0):.4f}")
    return modules


def load_delta(path):
    return load_file(str(path))["delta"].double()


def increment_files(inc_dir):
    return {io.read_json(sidecar_path(p))["concept"]: p for p in sorted(Path(inc_dir).glob("*.safetensors"))}


def write_composed(inc_dir, names, out, modules=None):
    """The served edit: per-module deltas W0 (sum of the chosen increments), or none (W0 itself)."""
    files = increment_files(inc_dir)
    names = list(files) if names is None else names
    unknown = sorted(set(names) - set(files))
    if unknown:
        raise ValueError(f"--erase: no increment for {unknown} in {inc_dir}; known: {sorted(files)}")
    total = sepme.compose({n: load_delta(files[n]) for n in names})
    module_deltas = {}
    if total is not None:
        if modules is None:   # the increments' sidecars name the model they were solved for
            modules = load_world_from_params(io.read_json(sidecar_path(files[names[0]]))).edit_modules()
        module_deltas = sepme.module_increments(modules, total)
    io.save_safetensors(module_deltas, out)
    io.write_json(sidecar_path(out), {"increments_dir": str(inc_dir), "erased": sorted(names),
                                     "restored": sorted(set(files) - set(names))})
    cli.progress(f"sepme edit: {len(names)} increments summed -> {out}")


if __name__ == "__main__":
    cli.run(main)
