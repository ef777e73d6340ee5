"""scripts/merge_results.py: one table from parts run by different configs, averages recomputed."""
import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("merge_results", ROOT / "scripts" / "merge_results.py")
merge_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_results)
HEADER = "method,concept,acc_e,acc_s,acc_g,h_o,n_images,remap_e\n"
NOTE = "200 images per prompt. Acc in %, from the scorer's argmax label.\n"


def write_part(prefix, rows, note=NOTE, command="snakemake results --configfile a.yaml"):
    prefix.with_suffix(".csv").write_text(HEADER + "".join(rows))
    prefix.with_suffix(".md").write_text(f"# Erasure results\n\nRegenerate: `{command}`\n\n{note}\n| table |\n")


def refused(*args):
    """The message the script exits with."""
    with pytest.raises(SystemExit) as exc:
        merge_results.main([str(a) for a in args])
    return str(exc.value.code)


def read(path):
    with open(path, newline="") as f:
        return {(r["method"], r["concept"]): r for r in csv.DictReader(f)}


def test_merge_recomputes_averages(tmp_path):
    write_part(tmp_path / "a", ["original,heart,90,80,50,10,100,-\n", "cf,heart,0,80,10,90,100,0.9\n",
                                "cf,average,0,80,10,90,100,0.9\n"])
    write_part(tmp_path / "b", ["original,ring,70,60,30,20,100,-\n", "cf,ring,20,70,30,60,100,0.7\n"],
               command="snakemake results --configfile b.yaml")
    out = tmp_path / "merged"
    merge_results.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    rows = read(out.with_suffix(".csv"))
    assert float(rows[("cf", "average")]["acc_e"]) == pytest.approx(10.0)   # the parts' own averages are dropped
    assert float(rows[("cf", "average")]["remap_e"]) == pytest.approx(0.8)
    assert float(rows[("original", "average")]["acc_g"]) == pytest.approx(40.0)
    assert rows[("original", "average")]["remap_e"] == "-"
    md = out.with_suffix(".md").read_text()
    assert "a.yaml" in md and "b.yaml" in md and "ring Acc_e" in md and NOTE.strip() in md


def test_merge_refuses_overlap_and_mixed_protocols(tmp_path):
    write_part(tmp_path / "a", ["cf,heart,0,80,10,90,100,0.9\n"])
    write_part(tmp_path / "b", ["cf,heart,5,80,10,90,100,0.9\n"])
    write_part(tmp_path / "c", ["cf,ring,5,80,10,90,100,0.9\n"], note="100 images per prompt.\n")
    assert "cf / heart" in refused(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert "different protocols" in refused(tmp_path / "a", tmp_path / "c", "--out", tmp_path / "m")
    assert "nope.csv" in refused(tmp_path / "nope", "--out", tmp_path / "m")
    assert "twice" in refused(tmp_path / "a", tmp_path / "a", "--out", tmp_path / "m")
    assert not (tmp_path / "m.csv").exists()


PER_PROMPT = "method,erased,id,concept,kind,split,prompt,n,acc,acc_lo,acc_hi\n"


def write_counts(prefix, rows):
    """PREFIX_per_prompt.csv: (method, erased, id, concept, kind, split, n, right) per prompt."""
    lines = [f"{m},{e},{i},{c},{k},{s},p{i},{n},{100 * right / n:.2f},0,100\n" for m, e, i, c, k, s, n, right in rows]
    Path(f"{prefix}_per_prompt.csv").write_text(PER_PROMPT + "".join(lines))


def counts_of(concept, other, held_out_right):
    """One erased concept's prompts: its canonical prompt (none right), the other concept's (all right),
    and two held-out prompts of its own with the given numbers right out of 10."""
    return [("cf", concept, 1, concept, "erase", "", 10, 0), ("cf", concept, 2, other, "erase", "", 10, 10),
            *[("cf", concept, 3 + j, concept, "associated", "report", 10, right)
              for j, right in enumerate(held_out_right)]]


def test_merged_averages_get_intervals_from_the_parts_per_prompt_counts(tmp_path):
    """heart's held-out prompts are never drawn as heart; ring's two are 10/10 and 0/10. Bootstrapping prompts
    (then images, which within a prompt all agree here) gives ring 0, 50 or 100 with chances 1/4, 1/2, 1/4,
    so the concept average is 0, 25 or 50: its 95% interval is [0, 50]; Acc_e and Acc_s have no spread."""
    write_part(tmp_path / "a", ["original,heart,100,100,50,0,30,-\n", "cf,heart,0,100,0,100,40,0.9\n"])
    write_counts(tmp_path / "a", [("original", "(none)", 1, "heart", "erase", "", 10, 10),
                                  ("original", "(none)", 2, "ring", "erase", "", 10, 10),
                                  ("original", "(none)", 3, "heart", "associated", "report", 10, 5)]
                 + counts_of("heart", "ring", [0, 0]))
    write_part(tmp_path / "b", ["cf,ring,0,100,50,80,40,0.7\n"], command="snakemake results --configfile b.yaml")
    write_counts(tmp_path / "b", counts_of("ring", "heart", [10, 0]))
    out = tmp_path / "merged"
    merge_results.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    average = read(out.with_suffix(".csv"))[("cf", "average")]
    assert float(average["acc_g"]) == pytest.approx(25.0)
    assert (float(average["acc_g_lo"]), float(average["acc_g_hi"])) == (pytest.approx(0.0), pytest.approx(50.0))
    assert (float(average["acc_e_lo"]), float(average["acc_e_hi"])) == (0.0, 0.0)
    assert (float(average["acc_s_lo"]), float(average["acc_s_hi"])) == (100.0, 100.0)
    assert "25.0 [0.0, 50.0]" in out.with_suffix(".md").read_text()

    # The merged table carries its own counts (the unedited model's under the concept it was read for), so
    # it merges again, with the same average.
    write_part(tmp_path / "c", ["cf,star,0,100,0,100,40,0.7\n"], command="snakemake results --configfile c.yaml")
    write_counts(tmp_path / "c", counts_of("star", "ring", [0, 0]))
    merge_results.main([str(out), str(tmp_path / "c"), "--out", str(tmp_path / "again")])
    again = read(tmp_path / "again.csv")
    assert float(again[("cf", "average")]["acc_g"]) == pytest.approx(50 / 3, abs=1e-3)
    assert float(again[("original", "heart")]["acc_g"]) == pytest.approx(50.0)


def test_merge_refuses_per_prompt_counts_of_another_run(tmp_path):
    write_part(tmp_path / "a", ["cf,heart,0,100,30,90,40,0.9\n"])   # acc_g 30, its counts say 0
    write_counts(tmp_path / "a", counts_of("heart", "ring", [0, 0]))
    assert "not this table's run" in refused(tmp_path / "a", "--out", tmp_path / "m")
    assert not (tmp_path / "m.csv").exists()


def test_merge_keeps_only_the_methods_asked_for(tmp_path):
    write_part(tmp_path / "a", ["original,heart,90,80,50,10,100,-\n", "cf,heart,0,80,10,90,100,0.9\n",
                                "speed,heart,5,80,10,90,100,0.9\n"])
    write_part(tmp_path / "b", ["cf_na,heart,0,70,10,90,100,0.9\n"], command="snakemake results --configfile b.yaml")
    out = tmp_path / "merged"
    merge_results.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--methods", "cf_na", "cf"])
    rows = read(out.with_suffix(".csv"))
    assert [m for m, c in rows if c == "heart"] == ["cf_na", "cf"]
    assert "--methods cf_na cf" in out.with_suffix(".md").read_text()
    assert "--methods mace" in refused(tmp_path / "a", "--out", tmp_path / "m", "--methods", "cf", "mace")
