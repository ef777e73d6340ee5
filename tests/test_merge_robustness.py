"""scripts/merge_robustness.py: one robustness table from runs of one concept each."""
import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("merge_robustness", ROOT / "scripts" / "merge_robustness.py")
merge_robustness = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_robustness)
HEADER = "method,concept,attack,pre_asr,pre_asr_lo,pre_asr_hi,post_asr,post_asr_lo,post_asr_hi,n_prompts,n_images,steps_to_50\n"
DEFINITION = ("Attack success rate (ASR, %): share of 40 images per attack prompt labelled as the erased concept, "
              "95% Wilson interval; definitions in docs/attacks.md.")
TRANSFER = "attack,source,method,concept,post_asr,post_asr_lo,post_asr_hi,n_images\n"


def write_part(prefix, concept, post=50.0, definition=DEFINITION, transfer=True):
    rows = [f"cf,{concept},inversion,0.00,0.00,3.10,{post:.2f},40.00,60.00,3,120,\n",
            f"cf,{concept},revival,0.00,0.00,3.10,80.00,70.00,88.00,0,120,100\n"]
    Path(f"{prefix}.csv").write_text(HEADER + "".join(rows) + "cf,all,inversion,0.00,0.00,1.60,50.00,44.00,56.00,6,240,\n")
    Path(f"{prefix}.md").write_text(f"{definition}\n\nRegenerate: `snakemake robustness_results --configfile "
                                    f"{concept}.yaml`\n\n| revival: steps to 50% (ASR at step 200) |\n")
    if transfer:
        Path(f"{prefix}_transfer.csv").write_text(TRANSFER + f"inversion,cf,cf,{concept},{post:.2f},40.00,60.00,120\n")
        Path(f"{prefix}_transfer.md").write_text("table\n")


def refused(*args):
    with pytest.raises(SystemExit) as exc:
        merge_robustness.main([str(a) for a in args])
    return str(exc.value.code)


def test_merge_keeps_every_concepts_rows_and_both_commands(tmp_path):
    write_part(tmp_path / "heart", "heart", post=50.0)
    write_part(tmp_path / "crescent", "crescent", post=75.0)
    out = tmp_path / "merged"
    merge_robustness.main([str(tmp_path / "heart"), str(tmp_path / "crescent"), "--out", str(out)])
    with open(f"{out}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["concept"], r["attack"], r["post_asr"]) for r in rows] == [
        ("heart", "inversion", "50.00"), ("heart", "revival", "80.00"),
        ("crescent", "inversion", "75.00"), ("crescent", "revival", "80.00")]   # the parts' pooled rows left out
    md = Path(f"{out}.md").read_text()
    assert "heart.yaml" in md and "crescent.yaml" in md and DEFINITION in md
    assert "| cf | crescent | 0.0 [0.0, 3.1] | 75.0 [40.0, 60.0] | 100 (80.0 [70.0, 88.0]) |" in md
    transfer = Path(f"{out}_transfer.md").read_text()
    assert "**heart**" in transfer and "**crescent**" in transfer


def test_merge_refuses_tables_that_do_not_compare(tmp_path):
    write_part(tmp_path / "a", "heart")
    write_part(tmp_path / "b", "heart")
    write_part(tmp_path / "c", "crescent", definition=DEFINITION.replace("40 images", "20 images"))
    write_part(tmp_path / "d", "crescent", transfer=False)
    assert "cf / heart / inversion" in refused(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert "images per prompt" in refused(tmp_path / "a", tmp_path / "c", "--out", tmp_path / "m")
    assert "transfer table" in refused(tmp_path / "a", tmp_path / "d", "--out", tmp_path / "m")
    assert "nope.csv" in refused(tmp_path / "nope", "--out", tmp_path / "m")
    assert not (tmp_path / "m.csv").exists()
