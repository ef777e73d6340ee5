"""AdaVD stage: the concept embeddings AdaVD's attention processors project out (erasure/adavd.py).

AdaVD edits no weight: generation, attacks and exports load this file through edits.apply_edit,
which puts the processor on every cross-attention. Writes the embeddings (safetensors, key
`adavd.target`, the settings in its metadata) and a JSON sidecar naming the token each came from.

    python stages/adavd.py --config config.yaml --method adavd --concept heart \\
        --out outputs/miniworld/edit/adavd/heart.safetensors
"""
import time

from erasure import adavd, cli, io, params, uce
from erasure.world import load_text_encoder


def main():
    args, prm = cli.edit_stage(__doc__, params.adavd)
    t0 = time.time()

    encoder, _ = load_text_encoder(prm)
    names = prm["target_concepts"]
    embeddings = adavd.target_embeddings(encoder, names)
    ids = encoder.tokenize(names)["input_ids"]
    tokens = [encoder.tokenizer.convert_ids_to_tokens(int(ids[i, k]))
              for i, k in enumerate(uce.last_index(encoder, names).tolist())]
    io.save_safetensors({adavd.TARGET_KEY: embeddings.contiguous()}, args.out,
                        metadata=adavd.settings_metadata(prm["adavd"]))
    io.write_json(io.sidecar_path(args.out), {**prm, "method": args.method, "target_tokens": tokens,
                                             "embedding_norms": [round(float(n), 4) for n in embeddings.norm(dim=1)],
                                             "wall_time_s": round(time.time() - t0, 3)})
    cli.progress(f"adavd {args.method}/{prm['concept']}: targets {tokens}")


if __name__ == "__main__":
    cli.run(main)
