"""Protocol v2's prompt selection (erasure.selection) and the committed selection it produced."""
import csv
import json

import pytest

from conftest import ROOT
from erasure.selection import MIN_NONE, MIN_RATE, choose_anchor, choose_held_out, contains_name, rate_rows


def test_training_names_count_only_as_whole_words():
    assert contains_name("a gold star", ["star", "five pointed star"])
    assert contains_name("A Five-Pointed Star!", ["five pointed star"])
    assert not contains_name("a starfish", ["star"])
    assert not contains_name("a plus mark", ["plus sign"])


def labelled(prompt, labels):
    return [{"prompt": prompt, "label": label} for label in labels]


def test_rates_keep_candidates_drawn_as_their_concept_at_least_half_the_time():
    rows = (labelled("a valentine", ["heart"] * 6 + ["circle"] * 4) + labelled("a sweetheart", ["heart"] * 4 + ["none"] * 6)
            + labelled("a lovely heart", ["heart"] * 10))
    rates = {"heart": rate_rows(rows, "heart")}
    assert rates["heart"]["a valentine"]["rate"] == 60.0 and rates["heart"]["a valentine"]["labels"] == {"heart": 6, "circle": 4}
    kept = choose_held_out({"heart": ["a valentine", "a sweetheart", "a lovely heart"]}, {"heart": ["heart"]}, rates)
    assert [e["prompt"] for e in kept["heart"]] == ["a valentine"]   # 40% is too few; "heart" is a training name
    assert kept["heart"][0]["lo"] < 60.0 < kept["heart"][0]["hi"]


def test_the_anchor_must_be_drawn_as_none_often_enough():
    rows = labelled("a shape", ["circle"] * 7 + ["none"] * 3) + labelled("a blob", ["none"] * 9 + ["star"])
    assert choose_anchor(rate_rows(rows, "none")) == "a blob"
    assert choose_anchor(rate_rows(labelled("a shape", ["circle"] * 7 + ["none"] * 3), "none")) is None


def test_the_committed_selection_meets_the_protocol():
    """The committed concepts file against the committed selection table it was written from: every kept
    prompt was drawn as its concept at >= MIN_RATE, and the anchor config.yaml uses, read from the
    table, was labelled none at >= MIN_NONE."""
    table = ROOT / "results/miniworld/prompt_selection.csv"
    if not table.is_file():
        pytest.skip("no prompt selection committed yet (python scripts/select_prompts.py)")
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    concepts = json.loads((ROOT / "data/miniworld/concepts.json").read_text())["concepts"]
    kept = {(r["concept"], r["prompt"]): r for r in rows if r["kept"] == "yes" and r["concept"] != "(anchor)"}
    listed = {(c, a["prompt"]) for c, v in concepts.items() for a in v["associated"]}
    assert listed == set(kept)
    assert all(float(r["rate"]) >= MIN_RATE for r in kept.values())
    import yaml
    anchor = yaml.safe_load((ROOT / "config.yaml").read_text())["anchor"]
    (row,) = [r for r in rows if r["concept"] == "(anchor)" and r["prompt"] == anchor]
    assert row["kept"] == "yes" and float(row["rate"]) >= MIN_NONE
