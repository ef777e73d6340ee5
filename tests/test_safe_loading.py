"""Nothing the pipeline reads may execute code: weights only through safetensors."""
import re

from conftest import ROOT

FORBIDDEN = [
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"\bimport pickle\b|\bpickle\.load|\bcPickle\b|\bdill\b|\bjoblib\.load"), "pickle"),
    (re.compile(r"allow_pickle\s*=\s*True"), "numpy allow_pickle"),
    (re.compile(r"\byaml\.load\((?!.*Loader=yaml\.SafeLoader)"), "yaml.load (use yaml.safe_load)"),
    (re.compile(r"(?<![.\w])(eval|exec)\("), "eval/exec"),
    (re.compile(r"use_safetensors\s*=\s*False"), "use_safetensors=False"),
]


def test_no_unsafe_deserialisation_in_the_code():
    files = [*ROOT.glob("erasure/*.py"), *ROOT.glob("stages/*.py"), *ROOT.glob("scripts/*.py"),
             ROOT / "Snakefile", *ROOT.glob("workflow/rules/*.smk")]
    found = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_check_catches_what_it_should():
    bad = ["x = torch.load(path)", "import pickle", "np.load(f, allow_pickle=True)", "eval(text)"]
    assert all(any(p.search(line) for p, _ in FORBIDDEN) for line in bad)
    assert not any(p.search(line) for p, _ in FORBIDDEN for line in ["torch.load(path, weights_only=True)", "model.eval()"])
