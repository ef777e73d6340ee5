# Attacks on every attacked method's model (docs/attacks.md): attack -> replay (generate) -> score -> robustness;
# revival: fine-tune -> the model at each checkpoint step (replay_revival) -> score_revival -> robustness.
# An attack's artefact lives in attacks/<attack>/<found on>/<concept>/; replaying it on a model writes
# attack_images/<attack>/<found on>/<model>/<concept>.csv and its scores mirror that path.

from erasure import attack_kinds as _attack_kinds

ATTACKS = config["attacks"]["run"]
ATTACKED = P.attacked_methods(config)


def attack_dir(attack, source, concept):
    return f"{OUT}/attacks/{attack}/{source}/{concept}"


def attack_score_files():
    """Every score file the robustness table reads: pre-attack prompts and each attack on each model,
    plus every (found on, drawn with) pair of the transfer table."""
    pairs = {("none", "original", m) for m in ATTACKED}
    pairs |= {(a, _attack_kinds.source_of(a, m), m)
              for a in ATTACKS if a in _attack_kinds.PROMPT_ATTACKS for m in ATTACKED}
    if config["attacks"]["transfer"] and "inversion" in ATTACKS:
        pairs |= {("inversion", s, m) for s in ATTACKED for m in ATTACKED}
    return sorted(f"{OUT}/attack_scores/{a}/{s}/{m}/{c}.csv" for a, s, m in pairs for c in ERASE)


rule attack_prompts:
    input:
        code=code_inputs("attack"),
    output:
        prompts=f"{OUT}/attacks/{{attack}}/original/{{concept}}/prompts.csv",
        sidecar=f"{OUT}/attacks/{{attack}}/original/{{concept}}/attack.json",
    wildcard_constraints:
        attack=one_of(_attack_kinds.MODEL_AGNOSTIC),
    params:
        p=as_json(lambda w: P.attack(config, w.attack, "original", w.concept)),
        out=lambda w: attack_dir(w.attack, "original", w.concept),
    log:
        f"{OUT}/logs/attack/{{attack}}/original/{{concept}}.log",
    threads: res("attack", "threads")
    resources:
        **resources_of("attack", gpu=0),
    shell:
        "{PY:q} stages/attack.py --params {params.p:q} --attack {wildcards.attack} --method original"
        " --concept {wildcards.concept} --out-dir {params.out:q} --threads {threads} > {log:q} 2>&1"


rule attack_inversion:
    input:
        unpack(edit_inputs),
        code=code_inputs("attack"),
        weights=UNET_WEIGHTS,
    output:
        prompts=f"{OUT}/attacks/inversion/{{method}}/{{concept}}/prompts.csv",
        tokens=f"{OUT}/attacks/inversion/{{method}}/{{concept}}/tokens.safetensors",
        sidecar=f"{OUT}/attacks/inversion/{{method}}/{{concept}}/attack.json",
    params:
        p=as_json(lambda w: P.attack(config, "inversion", w.method, w.concept)),
        edit=lambda w, input: edit_args(input),
        out=lambda w: attack_dir("inversion", w.method, w.concept),
    log:
        f"{OUT}/logs/attack/inversion/{{method}}/{{concept}}.log",
    threads: res("attack", "threads")
    resources:
        **resources_of("attack"),
    shell:
        "{PY:q} stages/attack.py --params {params.p:q} --attack inversion --method {wildcards.method}"
        " --concept {wildcards.concept} {params.edit} --out-dir {params.out:q} --threads {threads} > {log:q} 2>&1"


rule attack_unlearndiff:
    input:
        unpack(edit_inputs),
        code=code_inputs("attack"),
        weights=UNET_WEIGHTS,
    output:
        prompts=f"{OUT}/attacks/unlearndiff/{{method}}/{{concept}}/prompts.csv",
        sidecar=f"{OUT}/attacks/unlearndiff/{{method}}/{{concept}}/attack.json",
    params:
        p=as_json(lambda w: P.attack(config, "unlearndiff", w.method, w.concept)),
        edit=lambda w, input: edit_args(input),
        out=lambda w: attack_dir("unlearndiff", w.method, w.concept),
    log:
        f"{OUT}/logs/attack/unlearndiff/{{method}}/{{concept}}.log",
    threads: res("attack", "threads")
    resources:
        **resources_of("attack"),
    shell:
        "{PY:q} stages/attack.py --params {params.p:q} --attack unlearndiff --method {wildcards.method}"
        " --concept {wildcards.concept} {params.edit} --out-dir {params.out:q} --threads {threads} > {log:q} 2>&1"


REVIVAL_STEPS = sorted(config["attacks"]["revival"]["checkpoints"])


rule attack_revival:
    input:
        unpack(edit_inputs),
        code=code_inputs("revival"),
        weights=UNET_WEIGHTS,
    output:
        prompts=f"{OUT}/attacks/revival/{{method}}/{{concept}}/prompts.csv",
        sidecar=f"{OUT}/attacks/revival/{{method}}/{{concept}}/attack.json",
        steps=[f"{OUT}/attacks/revival/{{method}}/{{concept}}/step_{k}.safetensors" for k in REVIVAL_STEPS],
    params:
        p=as_json(lambda w: P.attack(config, "revival", w.method, w.concept)),
        edit=lambda w, input: edit_args(input),
        out=lambda w: attack_dir("revival", w.method, w.concept),
    log:
        f"{OUT}/logs/attack/revival/{{method}}/{{concept}}.log",
    threads: res("attack", "threads")
    resources:
        **resources_of("attack"),
    shell:
        "{PY:q} stages/revival.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " {params.edit} --out-dir {params.out:q} --threads {threads} > {log:q} 2>&1"


rule replay_revival:
    input:
        code=code_inputs("generate"),
        weights=UNET_WEIGHTS,
        prompts=f"{OUT}/attacks/revival/{{method}}/{{concept}}/prompts.csv",
        deltas=f"{OUT}/attacks/revival/{{method}}/{{concept}}/step_{{step}}.safetensors",
    output:
        manifest=f"{OUT}/revival_images/{{method}}/{{concept}}/step_{{step}}.csv",
    wildcard_constraints:
        step="[0-9]+",
    params:
        p=as_json(lambda w: P.generate(config, w.method)),
    log:
        f"{OUT}/logs/replay_revival/{{method}}/{{concept}}/step_{{step}}.log",
    threads: res("generate", "threads")
    resources:
        **resources_of("generate"),
    shell:
        "{PY:q} stages/generate.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --prompts {input.prompts:q} --deltas {input.deltas:q} --out {output.manifest:q}"
        " --threads {threads} > {log:q} 2>&1"


rule score_revival:
    input:
        code=code_inputs("score"),
        weights=ORACLE_WEIGHTS,
        manifest=rules.replay_revival.output.manifest,
    output:
        scores=f"{OUT}/revival_scores/{{method}}/{{concept}}/step_{{step}}.csv",
        prompts=f"{OUT}/revival_scores/{{method}}/{{concept}}/step_{{step}}.prompts.csv",
    params:
        p=as_json(lambda w: P.score(config)),
    log:
        f"{OUT}/logs/score_revival/{{method}}/{{concept}}/step_{{step}}.log",
    threads: res("score", "threads")
    resources:
        **resources_of("score"),
    shell:
        "{PY:q} stages/score.py --params {params.p:q} --manifest {input.manifest:q} --out {output.scores:q}"
        " --threads {threads} > {log:q} 2>&1"


def revival_score_files():
    if "revival" not in ATTACKS:
        return []
    return [f"{OUT}/revival_scores/{m}/{c}/step_{k}.csv" for m in ATTACKED for c in ERASE for k in REVIVAL_STEPS]


def replay_inputs(w):
    """The model's edit files, the attack's prompts and, for inversion, its learned tokens."""
    files = {**edit_inputs(w), "prompts": f"{attack_dir(w.attack, w.source, w.concept)}/prompts.csv"}
    if w.attack == "inversion":
        files["tokens"] = f"{attack_dir(w.attack, w.source, w.concept)}/tokens.safetensors"
    return files


rule replay:
    input:
        unpack(replay_inputs),
        code=code_inputs("generate"),
        weights=UNET_WEIGHTS,
    output:
        manifest=f"{OUT}/attack_images/{{attack}}/{{source}}/{{method}}/{{concept}}.csv",
    wildcard_constraints:
        attack=one_of(_attack_kinds.PROMPT_ATTACKS),
        source="[A-Za-z0-9_-]+",
    params:
        p=as_json(lambda w: P.generate(config, w.method)),
        edit=lambda w, input: edit_args(input),
        tokens=lambda w, input: f"--tokens {shlex.quote(input.tokens)}" if "tokens" in input.keys() else "",
    log:
        f"{OUT}/logs/replay/{{attack}}/{{source}}/{{method}}/{{concept}}.log",
    threads: res("generate", "threads")
    resources:
        **resources_of("generate"),
    shell:
        "{PY:q} stages/generate.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --prompts {input.prompts:q} {params.edit} {params.tokens} --out {output.manifest:q}"
        " --threads {threads} > {log:q} 2>&1"


rule score_attack:
    input:
        code=code_inputs("score"),
        weights=ORACLE_WEIGHTS,
        manifest=rules.replay.output.manifest,
    output:
        scores=f"{OUT}/attack_scores/{{attack}}/{{source}}/{{method}}/{{concept}}.csv",
        prompts=f"{OUT}/attack_scores/{{attack}}/{{source}}/{{method}}/{{concept}}.prompts.csv",
    params:
        p=as_json(lambda w: P.score(config)),
    log:
        f"{OUT}/logs/score_attack/{{attack}}/{{source}}/{{method}}/{{concept}}.log",
    threads: res("score", "threads")
    resources:
        **resources_of("score"),
    shell:
        "{PY:q} stages/score.py --params {params.p:q} --manifest {input.manifest:q} --out {output.scores:q}"
        " --threads {threads} > {log:q} 2>&1"


ROBUSTNESS = [f"{REPORT}/robustness.csv", f"{REPORT}/robustness.md"] if ATTACKS else []
TRANSFER = [f"{REPORT}/transfer.csv", f"{REPORT}/transfer.md"] if ATTACKS and config["attacks"]["transfer"] else []


rule robustness:
    input:
        attack_score_files(),
        revival_score_files(),
        code=code_inputs("robustness"),
    output:
        csv=report(f"{REPORT}/robustness.csv", caption="../report/robustness.rst", category="Attacks"),
        md=f"{REPORT}/robustness.md",
        prompts=report(f"{REPORT}/robustness_prompts.csv", caption="../report/robustness_prompts.rst",
                       category="Attacks"),
        transfer=[report(TRANSFER[0], caption="../report/transfer.rst", category="Attacks"), TRANSFER[1]]
        if TRANSFER else [],
        revival=[report(f"{REPORT}/revival.csv", caption="../report/revival.rst", category="Attacks")]
        if "revival" in ATTACKS else [],
        html=f"{REPORT}/attacks.html",
        plot=report(f"{REPORT}/plots/attack_success.png", caption="../report/attack_success.rst", category="Attacks"),
        grids=[report(f"{REPORT}/attack_grids/{a}_{c}.png", caption="../report/attack_grids.rst", category="Attacks",
                      subcategory="Image grids", labels={"attack": a, "erased": c}) for a in ["none", *ATTACKS]
               for c in ERASE],
    params:
        p=as_json(lambda w: P.robustness(config)),
        scores=f"{OUT}/attack_scores",
        revival=f"{OUT}/revival_scores",
        out=REPORT,
    log:
        f"{OUT}/logs/robustness.log",
    threads: 1
    resources:
        **resources_of("report"),
    shell:
        "{PY:q} stages/robustness.py --params {params.p:q} --scores-dir {params.scores:q}"
        " --revival-dir {params.revival:q} --out {params.out:q}"
        " > {log:q} 2>&1"


if ATTACKS and config["attacks"]["results"]:

    rule robustness_results:
        input:
            csv=rules.robustness.output.csv,
            md=rules.robustness.output.md,
            transfer=TRANSFER,
            script=code_inputs("results_table"),
        output:
            csv=f"{config['attacks']['results']}.csv",
            md=f"{config['attacks']['results']}.md",
            transfer=[f"{config['attacks']['results']}_transfer.{x}" for x in ("csv", "md")] if TRANSFER else [],
        params:
            command=config["report"]["command"],
        shell:
            "{PY:q} stages/results_table.py --csv {input.csv:q} --md {input.md:q} --command {params.command:q}"
            " --out-csv {output.csv:q} --out-md {output.md:q}"
            + (" && {PY:q} stages/results_table.py --csv {input.transfer[0]:q} --md {input.transfer[1]:q}"
               " --command {params.command:q} --out-csv {output.transfer[0]:q} --out-md {output.transfer[1]:q}"
               if TRANSFER else "")
