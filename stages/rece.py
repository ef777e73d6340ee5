"""RECE stage: rounds of {the embedding that regenerates the concept under the current edit; erase it}
from a UCE edit (erasure/rece.py), for every cross-attention to_k / to_v.

Writes weight deltas from the unedited model (safetensors keyed by module name, like the closed form)
and a JSON sidecar with each round's adversarial embedding norm and its cosine to the concept's.

    python stages/rece.py --config config.yaml --method rece --concept heart \\
        --base outputs/miniworld/edit/uce/heart.safetensors --out outputs/miniworld/edit/rece/heart.safetensors
"""
import time

from safetensors.torch import load_file

from erasure import cli, io, params, rece
from erasure.closed_form import apply_deltas
from erasure.world import load_world_from_params


def main():
    args, prm = cli.edit_stage(__doc__, params.rece, lambda p: p.add_argument(
        "--base", required=True, help="the base UCE method's weight deltas (.safetensors)"))
    t0 = time.time()

    # 1. The unedited projections, then the base edit applied to them.
    world = load_world_from_params(prm)
    modules = world.edit_modules()
    # The rounds' solves run on the host in float64, as the closed form's (the world may be on a GPU).
    originals = {name: m.weight.detach().cpu().clone() for name, m in modules.items()}
    apply_deltas(modules, load_file(args.base))
    base = {name: m.weight.detach().cpu().clone() for name, m in modules.items()}

    # 2. The rounds; deltas from the unedited weights.
    final, rounds = rece.erase(world.encoder, originals, base, prm["concept"], prm["guide"], prm["preserve_prompts"],
                               prm["rece"])
    deltas = {name: (w.double() - originals[name].double()).to(originals[name].dtype).contiguous()
              for name, w in final.items()}
    io.save_safetensors(deltas, args.out)
    io.write_json(io.sidecar_path(args.out), {**prm, "method": args.method, "base_deltas": args.base, "rounds": rounds,
                                             "modules": len(deltas), "wall_time_s": round(time.time() - t0, 3)})
    cli.progress(f"rece {args.method}/{prm['concept']}: {len(rounds)} rounds, last adversarial cosine "
                 f"{rounds[-1]['cosine_to_concept']}")


if __name__ == "__main__":
    cli.run(main)
