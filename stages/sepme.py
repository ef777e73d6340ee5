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
from erasure import cli, params, sepme


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
    modules = None
    if args.concepts or args.params:
        if not (args.config or args.params):
            raise ValueError("--concepts needs --config (or --params)")
        prm = cli.stage_params(args, params.sepme, args.concepts or [])
        concepts = args.concepts or prm["concepts"]
        if not concepts:
            raise ValueError("no concepts to solve: give --concepts")
        modules = sepme.solve(prm, concepts, args.increments_dir, args.given, args.joint)
    if args.out:
        sepme.write_composed(args.increments_dir, args.erase, args.out, modules)


if __name__ == "__main__":
    cli.run(main)
