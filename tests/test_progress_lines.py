"""Progress where stderr is not a terminal (CI logs, `| tee`, notebooks' subprocesses): plain lines now and
then with counts, rate and errors, instead of a bar that draws nothing there."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from judge_fixtures import judge_config, judge_project
from prefclean.events import JudgingPaused, JudgingProgress
from prefclean.reporter import PlainProgress
from prefclean.results import JudgingStats

LINE = re.compile(r"^judge fake: (\d+)/(\d+) rows \((\d+)%\), (\d+) rows/s, (\d+) failed, (\d+) cached, (\d+) 429s$", re.M)


def test_a_build_whose_stderr_is_not_a_terminal_prints_progress_lines(make_project, fake_judge):
    fake_judge.control(latency_ms=200, fail_if_contains="question 3\n")
    rows = [{"id": i, "instruction": f"question {i}", "generations": [f"a {i} [[rate=4]]", f"b {i} [[rate=2]]"]}
            for i in range(24)]
    root = judge_project(make_project, fake_judge, rows,
                         judges={"fake": judge_config(fake_judge, concurrency=1, max_retries=0)})
    env = {k: v for k, v in os.environ.items() if k != "PREFCLEAN_PROGRESS"}
    done = subprocess.run([sys.executable, "-m", "prefclean.cli", "build", "--project-dir", str(root)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = [tuple(map(int, m)) for m in LINE.findall(done.stderr)]
    assert seen, done.stderr  # ~4.8 s of judging: quiet for 2 s, then a line per tenth at most every 2 s
    for d, total, percent, rate, failed, cached, limited in seen:
        assert 0 < d <= total == 24 and percent == d * 100 // 24 and rate > 0 and cached == 0 and limited == 0
    assert seen[-1][4] == 1  # row 3's failure counted by then
    assert "\r" not in done.stderr and "▕" not in done.stderr  # no bar drawn into the log
    assert not LINE.search(done.stdout)


def test_progress_lines_are_spaced_out_and_quiet_at_first():
    now = [0.0]
    lines: list[str] = []
    plain = PlainProgress(lines.append, every=10, quiet=2, clock=lambda: now[0])

    def at(t, done, total=1000, failed=0):
        now[0] = t
        plain.show(JudgingProgress("fake", done, total, JudgingStats(failed=failed)))

    at(0, 1)
    at(1.9, 300)  # quiet at first, however much is done
    at(2.0, 310)
    at(3.0, 330)  # not another tenth, not 10 s
    at(4.0, 411)  # another tenth, 2 s after the last line
    at(4.5, 600)  # a tenth, but too soon
    at(14.0, 601, failed=2)  # 10 s
    assert lines == ["judge fake: 310/1,000 rows (31%), 155 rows/s, 0 failed, 0 cached, 0 429s",
                     "judge fake: 411/1,000 rows (41%), 103 rows/s, 0 failed, 0 cached, 0 429s",
                     "judge fake: 601/1,000 rows (60%), 43 rows/s, 2 failed, 0 cached, 0 429s"]
    plain.show(JudgingPaused("fake"))  # the next model starts quiet again
    at(15.0, 500)
    assert len(lines) == 3


def test_a_judge_slower_than_a_row_a_second_shows_rows_per_minute_not_zero_per_second():
    from prefclean.reporter import _rate
    assert _rate(3, 10.0, "rows") == "18.0 rows/min"
    assert _rate(100, 2.0, "rows") == "50 rows/s"
