# Concept erasure for text-to-image diffusion models: mine -> closed form -> LoRA -> generate -> score -> report.
# Default: the mini world (config.yaml). Stable Diffusion: --configfile configs/<task>.yaml.

configfile: "config.yaml"

# Snakemake 9's scheduler multiplies its wake-up timers as jobs finish; keep one (erasure/scheduling.py).
from erasure import scheduling as _scheduling
_scheduling.install()

# `snakemake --report report.html`: the outputs marked report(...) in workflow/rules, captions in workflow/report.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/erase.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/sepme.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/export.smk"


# Once, when a run starts and before any job: every erase prompt keeps its concept word within the
# text encoder's tokens (this loads a tokenizer, too slow for every DAG build); then one run at a time
# per out_dir, whichever checkout starts it (erasure/outlock.py).
onstart:
    from erasure import truncation
    try:
        truncation.check_run(config)
        _outlock.acquire(OUT)
    except (ConfigError, _outlock.OutDirLocked) as e:
        raise WorkflowError(str(e)) from None


onsuccess:
    _outlock.release(OUT)


onerror:
    _outlock.release(OUT)


# Cheap bookkeeping rules run where snakemake runs, not as cluster jobs.
localrules:
    all,
    prompts,
    fetch_i2p,
    i2p_prompts,
    fetch_coco,
    coco_prompts,


rule all:
    default_target: True
    input:
        f"{REPORT}/summary.csv",
        f"{REPORT}/index.html",
        AUDITS,
        ROBUSTNESS,
        EXPORTS,
