# The multi-concept SepME experiment (config sepme_sets, sepme_restore): for each set, one increment per
# concept; then three models per set, each generated and scored like any method (method set_<set>):
#   all      every increment of the set (the set erased)
#   restore  every increment but sepme_restore's (that concept restored, no retraining)
#   joint    one closed-form solve for the whole set (not separable; the comparison row)


def set_variants(name):
    variants = ["all"]
    if len(config["sepme_sets"][name]) > 1:
        variants += ["joint"] + (["restore"] if config["sepme_restore"] else [])
    return variants


def set_concept_args(name):
    return " ".join(f"--concepts {shlex.quote(c)}" for c in config["sepme_sets"][name])


rule sepme_set:
    input:
        code=code_inputs("sepme"),
        weights=UNET_WEIGHTS,
    output:
        increments=directory(f"{OUT}/sepme_sets/{{set}}/increments"),
        all=f"{OUT}/sepme_sets/{{set}}/all.safetensors",
        joint=f"{OUT}/sepme_sets/{{set}}/joint.safetensors",
    params:
        p=as_json(lambda w: P.sepme(config, config["sepme_sets"][w.set])),
        concepts=lambda w: set_concept_args(w.set),
    log:
        f"{OUT}/logs/sepme_set/{{set}}.log",
    threads: res("sepme_set", "threads")
    resources:
        **resources_of("sepme_set"),
    shell:
        "{PY:q} stages/sepme.py --params {params.p:q} {params.concepts} --increments-dir {output.increments:q}"
        " --out {output.all:q} --joint {output.joint:q} --threads {threads} > {log:q} 2>&1"


rule sepme_restore:
    input:
        code=code_inputs("sepme"),
        weights=UNET_WEIGHTS,
        increments=rules.sepme_set.output.increments,
    output:
        f"{OUT}/sepme_sets/{{set}}/restore.safetensors",
    params:
        keep=lambda w: " ".join(f"--erase {shlex.quote(c)}" for c in config["sepme_sets"][w.set]
                                if c != config["sepme_restore"]),
    log:
        f"{OUT}/logs/sepme_restore/{{set}}.log",
    threads: res("sepme_set", "threads")
    resources:
        **resources_of("sepme_set", gpu=0),
    shell:
        "{PY:q} stages/sepme.py --increments-dir {input.increments:q} {params.keep} --out {output:q} > {log:q} 2>&1"


def sepme_scores(w):
    files = [f"{OUT}/scores/original/all.csv"]
    for name in P.drawn_sets(config):
        files += [f"{OUT}/scores/set_{name}/{v}.csv" for v in set_variants(name)]
    return files


rule sepme_table:
    input:
        sepme_scores,
        code=code_inputs("sepme_table"),
    output:
        csv=f"{OUT}/report/sepme.csv",
        md=f"{OUT}/report/sepme.md",
    params:
        p=as_json(lambda w: P.sepme_table(config)),
        out=OUT,
    log:
        f"{OUT}/logs/sepme_table.log",
    shell:
        "{PY:q} stages/sepme_table.py --params {params.p:q} --scores-dir {params.out:q}/scores"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
