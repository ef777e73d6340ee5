"""Protocol v2's prompt selection (erasure.selection) and the committed selection it produced."""
import csv
import json

from conftest import ROOT
from erasure.selection import (MIN_NONE, MIN_RATE, choose_anchor, choose_held_out, contains_name, protocol_met,
                               rate_rows)


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


def test_the_committed_concepts_file_follows_the_committed_selection():
    """The concepts file is protocol v2's exactly when the committed selection table (images scored by
    the oracle) meets the protocol: then every kept prompt was drawn as its concept at >= MIN_RATE and the
    anchor config.yaml uses was labelled none at >= MIN_NONE, as the table says, not as a constant says."""
    with open(ROOT / "results/miniworld/prompt_selection.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    anchors = {r["prompt"]: r for r in rows if r["concept"] == "(anchor)"}
    anchor = max(anchors, key=lambda p: float(anchors[p]["rate"]))
    kept = {(r["concept"], r["prompt"]): r for r in rows if r["kept"] == "yes" and r["concept"] != "(anchor)"}
    counts = {c: sum(1 for k in kept if k[0] == c) for c in {r["concept"] for r in rows} - {"(anchor)"}}
    held_out = {c: [None] * n for c, n in counts.items()}
    problems = protocol_met(held_out, anchor if float(anchors[anchor]["rate"]) >= MIN_NONE else None)
    data = json.loads((ROOT / "data/miniworld/concepts.json").read_text())
    assert (data.get("protocol") == 2) == (not problems), problems
    if problems:
        return
    listed = {(c, a["prompt"]) for c, v in data["concepts"].items() for a in v["associated"]}
    assert listed == set(kept) and all(float(r["rate"]) >= MIN_RATE for r in kept.values())
    import yaml
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["anchor"] == anchor


def test_protocol_needs_an_anchor_and_enough_held_out_prompts():
    full = {c: [{}] * 3 for c in "abcdefgh"}
    assert protocol_met(full, "a blob") == []
    assert "no anchor" in protocol_met(full, None)[0]
    two_short = {**full, "g": [{}], "h": [{}, {}]}
    assert "only 6 concepts" in protocol_met(two_short, "a blob")[0]
    assert protocol_met({**full, "h": []}, "a blob") == []   # 7 of 8 is enough
