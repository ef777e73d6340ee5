"""Remap stage: the sample-free remap score of an edit for every evaluation prompt.

t = <W h - W0 h, W0 a - W0 h> / ||W0 a - W0 h||^2 per edited to_k / to_v (a = anchor tokens;
1 = fully remapped to the anchor, 0 = untouched), averaged over layers. The edit is the closed-form
deltas plus the LoRA (merged) when one was trained. Writes JSON {prompt id: t}.

    python stages/remap.py --config config.yaml --concept heart --deltas D.safetensors [--lora DIR] --out R.json
"""
from erasure import cli, io, params as stage_params
from erasure.closed_form import remap_score
from erasure.edits import apply_edit
from erasure.world import load_world_from_params


def main():
    p = cli.parser(__doc__)
    p.add_argument("--concept", help="concept file name (slug); needed with --config")
    p.add_argument("--deltas", required=True)
    p.add_argument("--lora")
    cli.add_prompts_arg(p)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    cli.set_threads(args.threads)
    prm = cli.stage_params(args, stage_params.remap, args.concept)

    # 1. W0 and the edited W of every projection; their difference is the whole edit.
    world = load_world_from_params(prm)
    modules = world.edit_modules()
    w0 = {n: m.weight.detach().clone() for n, m in modules.items()}
    apply_edit(world, args.deltas, args.lora)
    deltas = {n: modules[n].weight.detach() - w0[n] for n in modules}
    for n, m in modules.items():  # restore W0: remap_score reads W0 from the modules
        m.weight.data.copy_(w0[n])

    # 2. Score every prompt against the anchor, token by token over the whole sequence.
    rows = [r for r in cli.read_prompts(args) if r["kind"] != "coco"]   # COCO captions name no concept
    prompts = [r["prompt"] for r in rows]
    emb = world.encoder.encode_tokens(prompts + [prm["anchor"]])
    anchor = emb[-1]
    scores = {str(r["id"]): round(remap_score(modules, deltas, emb[i], anchor), 5) for i, r in enumerate(rows)}
    io.write_json(args.out, {"concept": prm["concept"], "anchor": prm["anchor"], "scores": scores})


if __name__ == "__main__":
    cli.run(main)
