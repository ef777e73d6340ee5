"""The report's plots (erasure.plots): what each bar shows, its interval, and the PNG written."""
from PIL import Image

from erasure import plots


def per_prompt(method, erased, pid, concept, kind, acc, prompt=None):
    return {"method": method, "erased": erased, "id": pid, "concept": concept, "kind": kind, "split": "",
            "prompt": prompt or f"{concept} {kind} {pid}", "n": 10, "acc": f"{acc:.2f}",
            "acc_lo": f"{max(acc - 10, 0):.2f}", "acc_hi": f"{min(acc + 5, 100):.2f}"}


def test_prompt_accuracy_puts_the_erased_concepts_prompts_first_with_wilson_bars(tmp_path):
    rows = [per_prompt("original", "(none)", 0, "heart", "erase", 90), per_prompt("original", "(none)", 1, "ring", "erase", 80),
            per_prompt("original", "(none)", 2, "heart", "associated", 70),
            per_prompt("cf", "heart", 0, "heart", "erase", 10), per_prompt("cf", "heart", 1, "ring", "erase", 75),
            per_prompt("cf", "heart", 2, "heart", "associated", 20),
            per_prompt("cf", "ring", 0, "heart", "erase", 88)]   # the other concept's edit: not in this plot
    fig = plots.prompt_accuracy(rows, "heart", ["original", "cf"], tmp_path / "plots" / "a.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["heart erase 0 (erase)", "heart associated 2 (assoc)", "ring erase 1 (erase)"]
    widths = [round(p.get_width()) for p in ax.patches]
    assert widths == [90, 70, 80, 10, 20, 75]   # per method, per prompt in the plot's order
    caps = [c for c in ax.collections if c.get_segments()]   # one error bar per bar, lo..hi
    spans = sorted(tuple(round(x) for x in (s[0][0], s[1][0])) for c in caps for s in c.get_segments())
    assert (0, 15) in spans and (80, 95) in spans and len(spans) == 6
    with Image.open(tmp_path / "plots" / "a.png") as im:
        assert im.width > 0 and len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(99)) > 3
    assert not list((tmp_path / "plots").glob("*.tmp"))


def test_attack_success_has_a_panel_per_concept_and_a_bar_per_attack_and_method(tmp_path):
    def row(method, concept, attack, post, pre=5.0):
        return {"method": method, "concept": concept, "attack": attack, "post_asr": post, "post_asr_lo": post - 4,
                "post_asr_hi": post + 6, "pre_asr": pre, "pre_asr_lo": 0.0, "pre_asr_hi": 10.0}
    rows = [row(m, c, a, post) for c in ("heart", "ring") for a, post in (("inversion", 80.0), ("ringabell", 30.0))
            for m in ("original", "cf", "realera")]
    rows.append(row("uce", "heart", "inversion", float("nan")))   # a missing cell is drawn as no bar
    fig = plots.attack_success(rows, tmp_path / "asr.png")
    assert len(fig.axes) == 2
    first = fig.axes[0]
    assert [t.get_text() for t in first.get_xticklabels()] == ["original", "cf", "realera", "uce"]
    assert [round(p.get_height()) for p in first.patches] == [80, 80, 80, 0, 30, 30, 30, 0]
    assert "heart" in first.get_title() and "ring" in fig.axes[1].get_title()
    with Image.open(tmp_path / "asr.png") as im:
        assert im.height > im.width / 2


def test_the_audit_projection_draws_each_cloud_with_its_count(tmp_path):
    import numpy as np
    points = {"neighbors": np.zeros((5, 2)), "beyond": np.ones((3, 2)), "erase": np.array([[2.0, 2.0]])}
    fig = plots.projection(points, tmp_path / "p.png", "heart: prompt 0")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["beyond (3)", "neighbors (5)", "erase (1)"]
    assert [len(c.get_offsets()) for c in ax.collections] == [3, 5, 1]
    assert (tmp_path / "p.png").stat().st_size > 1000
