"""Training progress: tqdm on a terminal, plain lines (loss, throughput, time left) in a log."""

from __future__ import annotations

import io

import pytest

from averis.progress import LineProgress, clock, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_at_the_first_step_every_n_steps_and_at_the_end():
    out = io.StringIO()
    bar = LineProgress(total=7, initial=0, desc="averis", every=3, stream=out)
    for step in range(1, 8):
        bar.set_postfix({"loss": f"{10 - step:.4f}"})
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert [ln.split(" | ")[0] for ln in lines] == ["averis: step 1/7 (14%)", "averis: step 3/7 (43%)",
                                                     "averis: step 6/7 (86%)", "averis: step 7/7 (100%)"]
    assert "loss 9.0000" in lines[0] and "loss 7.0000" in lines[1] and "loss 3.0000" in lines[3]
    assert lines[-1].endswith("ETA 0:00") and "elapsed" in lines[-1]


def test_a_resumed_run_counts_from_its_step():
    out = io.StringIO()
    bar = LineProgress(total=20, initial=8, desc="nvfp4", every=5, stream=out)
    bar.update(1)
    assert out.getvalue().startswith("nvfp4: step 9/20 (45%)")  # the first step of this process
    bar.update(1)
    assert out.getvalue().splitlines()[-1].startswith("nvfp4: step 10/20 (50%)")


def test_time_left_comes_from_the_recent_steps_not_the_average_since_the_start(monkeypatch):
    """10 slow steps (10 s each, a busy machine), then 30 fast ones (1 s): 60 steps left take a minute, not the
    3.3 minutes of the average since the start."""
    import averis.progress as progress

    clock_now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock_now[0])
    out = io.StringIO()
    bar = LineProgress(total=100, initial=0, desc="nvfp4", every=40, stream=out)
    for step in range(1, 41):
        clock_now[0] += 10.0 if step <= 10 else 1.0
        bar.update(1)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("nvfp4: step 40/100") and last.endswith("2:10 elapsed, ETA 1:00")


def test_uneven_updates_print_once_per_multiple_and_unknown_totals_have_no_eta():
    out = io.StringIO()
    bar = LineProgress(total=None, initial=0, desc="tokenizing", every=100, stream=out, unit="chars")
    for n in (60, 60, 250, 10):  # the first update; crosses 100 (at 120), 200 and 300 (at 370, one line)
        bar.update(n)
    lines = out.getvalue().splitlines()
    assert [ln.split(" | ")[0] for ln in lines] == ["tokenizing: chars 60", "tokenizing: chars 120",
                                                     "tokenizing: chars 370"]
    assert "ETA" not in lines[0] and lines[0].endswith("elapsed")


def test_terminal_gets_tqdm_and_a_log_gets_lines():
    log = io.StringIO()
    assert isinstance(progress_bar(5, 0, "bf16", 1, tty=io.StringIO(), log=log), LineProgress)
    bar = progress_bar(5, 0, "bf16", 1, tty=FakeTerminal(), log=log)
    assert type(bar).__name__ == "tqdm"
    bar.close()


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59.4, "0:59"), (61, "1:01"), (3725, "1:02:05"),
                                               (float("nan"), "?")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every >= 1"):
        LineProgress(5, 0, "x", 0, io.StringIO())
