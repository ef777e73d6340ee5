"""Progress of long loops: a tqdm bar on a terminal, plain periodic lines in a log."""
import io

from erasure.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_every_n_steps_and_at_the_end(capsys):
    bar = Progress(25, "lora", every=10, initial=0, unit="steps", stream=io.StringIO())
    for step in range(25):
        bar.update(loss=0.5 / (step + 1))
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["lora: 10/25 steps", "lora: 20/25 steps", "lora: 25/25 steps"]
    assert all(" steps/s, " in line and " left" in line for line in lines)
    assert lines[-1].endswith("0m00s left, loss 0.02000")


def test_a_resumed_run_counts_from_its_first_step_and_batches_cross_the_marks(capsys):
    bar = Progress(100, "generate", every=10, initial=40, unit="images", stream=io.StringIO())
    for _ in range(4):
        bar.update(15)   # batches of 15 images: 55, 70, 85, 100
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"generate: {n}/100 images" for n in (55, 70, 85, 100)]
    assert "(55%)" in lines[0]


def test_a_terminal_gets_a_tqdm_bar_and_no_lines(capsys):
    screen = Terminal()
    with Progress(5, "esd", unit="iterations", stream=screen) as bar:
        for _ in range(5):
            bar.update(loss=0.25)
    assert capsys.readouterr().out == ""
    drawn = screen.getvalue()
    assert "esd" in drawn and "5/5" in drawn and "iterations/s" in drawn and "loss=0.25000" in drawn
