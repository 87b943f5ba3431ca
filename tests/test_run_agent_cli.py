"""A new user's first hour with run_agent.py and train.py: the main command on the shipped models gives
every wrong answer a cause and an HTML report; impossible numbers, Ctrl-C at start-up, tasks without a
shipped model and empty runs each get one line; --help shows every default and an example per use."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import run_agent  # noqa: E402
import train  # noqa: E402


def _error_line(argv, capsys, module=run_agent) -> str:
    """Run argument parsing that must fail: exit 2, and the last stderr line is the reason."""
    with pytest.raises(SystemExit) as e:
        module.parse_args(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag,value", [("--limit", "0"), ("--limit", "-1"), ("--batch-size", "0"),
                                        ("--max-new-tokens", "-1"), ("--max-example-tokens", "0"), ("--limit", "ten")])
def test_impossible_numbers_are_refused(flag, value, capsys):
    line = _error_line([flag, value], capsys)
    assert f": error: argument {flag}: '{value}'" in line  # (prog is pytest's here, run_agent.py on the CLI)
    assert "positive integer" in line or "not an integer" in line


@pytest.mark.parametrize("argv", [["--lr", "0"], ["--epochs", "-1"], ["--save-every", "-5"], ["--max-steps", "0"],
                                  ["--lr", "nan"], ["--micro-batch-size", "0"], ["--warmup-ratio", "-0.1"]])
def test_train_refuses_impossible_numbers(argv, capsys):
    line = _error_line(["--module", "grounding", "--preset", "tiny", "--out", "x", *argv], capsys, train)
    assert f": error: argument {argv[0]}: '{argv[1]}'" in line


def test_help_shows_defaults_and_one_example_per_use():
    out = subprocess.run([sys.executable, "run_agent.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    flat = " ".join(out.split())
    for default in ("(default: gsm8k)", "(default: iterative)", "(default: local)", "(default: 32)", "(default: all)",
                    "planner 128, grounder 64, example 576", "(default: True)"):
        assert default in flat, default
    for use in ("--task gsm8k --limit 20", "--backend gold", "--planner runs/plan --grounder runs/ground",
                "--planner ai2lumos/lumos_maths_plan_iterative", "--planner http://", "--question", "python -m lumos.report"):
        assert use in out, use
    out = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    flat = " ".join(out.split())
    for default in ("(default: maths)", "(default: 2.0)", "(default: 2e-05)", "(default: 128)", "(default: 8)",
                    "(default: 50)", "(default: 1024)", "(default: 0.03)"):
        assert default in flat, default
    for use in ("torchrun --nproc_per_node=2 train.py", "--lr 1e-3", "--resume", "--export-only", "--init /ckpt/"):
        assert use in out, use


def test_ctrl_c_during_start_up_is_one_line_and_130(monkeypatch, tmp_path, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(run_agent, "make_backends", interrupted)
    assert run_agent.main(["--out", str(tmp_path / "t.jsonl")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted before any example was run; nothing written"] and not list(tmp_path.iterdir())


@pytest.mark.parametrize("task,family", [("hotpotqa", "complex_qa"), ("strategyqa", "complex_qa")])
def test_a_task_without_a_shipped_model_says_what_to_pass(task, family, capsys):
    with pytest.raises(SystemExit) as e:
        run_agent.main(["--task", task])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert f"--task {task} ({family}; the models in checkpoints/ are maths-only)" in err[0]
    assert f"--planner ai2lumos/lumos_{family}_plan_iterative --grounder ai2lumos/lumos_{family}_ground_iterative" in err[0]


def test_an_empty_run_never_overwrites_a_summary(monkeypatch, tmp_path, capsys):
    out = tmp_path / "g.jsonl"
    assert run_agent.main(["--backend", "gold", "--limit", "3", "--out", str(out), "--no-html"]) == 0
    summary = out.with_name("g.summary.json")
    before = summary.read_text()
    import lumos.agent.tasks as tasks
    monkeypatch.setattr(tasks, "load_task", lambda name, limit=None: [])
    assert run_agent.main(["--backend", "gold", "--out", str(tmp_path / "other.jsonl")]) == 1
    assert "no example finished" in capsys.readouterr().err
    assert summary.read_text() == before and not (tmp_path / "other.summary.json").exists()


def test_main_command_every_wrong_answer_has_a_cause(tmp_path, capsys):
    """The README's first command on the shipped demo models (8 examples): counts add up, rows in
    dataset order, the HTML report next to the trace."""
    from lumos.agent.agent import FAILURES
    out = tmp_path / "demo.jsonl"
    assert run_agent.main(["--task", "gsm8k", "--limit", "8", "--batch-size", "4", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"gsm8k-test-{i}" for i in range(8)]  # dataset order, not completion order
    for r in rows:
        assert r["correct"] or r["failure"] in FAILURES, r["failure"]
    s = json.loads(out.with_name("demo.summary.json").read_text())
    assert s["correct"] + sum(s["failures"].values()) == s["n"] == 8
    assert s["budgets"] == {"planner": 128, "grounder": 64, "example": 576}
    printed = capsys.readouterr().out
    assert f"{s['correct']} correct; wrong by cause: " in printed
    page = out.with_name("demo.html").read_text()
    assert page.count('<details class="ex ') == 8 and f"report: {out.with_name('demo.html')}" in printed


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("argv", [["run_agent.py", "--task", "gsm8k", "--limit", "5"],
                                  ["train.py", "--module", "grounding", "--preset", "tiny", "--max-steps", "5"]])
def test_a_real_ctrl_c_during_start_up(argv, delay, tmp_path):
    """SIGINT `delay` s after Python can catch it (importing torch and numpy, loading models or data): one
    line on stderr, exit 130. (torch's C++ start-up swallowed a Ctrl-C that landed in its numpy import.)"""
    import signal
    import time
    out = ["--out", str(tmp_path / ("t.jsonl" if argv[0] == "run_agent.py" else "run"))]
    p = subprocess.Popen([sys.executable, *argv, *out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _catches_sigint(p.pid):  # Python's own handler is in place
        time.sleep(0.05)
    time.sleep(delay)  # importing torch, building the parser, loading ...
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # (a tqdm bar may have begun)
    assert p.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0], err[-2000:]
    assert "Traceback" not in err


def _catches_sigint(pid: int) -> bool:
    """Whether the process has a handler for SIGINT (bit 2 of SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << 1))


def test_small_local_models_decode_on_one_cpu_thread():
    import torch
    from types import SimpleNamespace
    from lumos.agent.backends import GoldBackend, LocalBackend
    before = torch.get_num_threads()
    demo = LocalBackend(str(ROOT / "checkpoints/lumos-demo-ground"))
    try:
        torch.set_num_threads(2)
        run_agent.set_threads(SimpleNamespace(threads=None, device="cpu"), GoldBackend({}, "planner", "iterative"), demo)
        assert torch.get_num_threads() == 1  # 5.5M parameters: one thread
        torch.set_num_threads(2)
        run_agent.set_threads(SimpleNamespace(threads=None, device="cpu"), GoldBackend({}, "planner", "iterative"))
        assert torch.get_num_threads() == 2  # no local model: left alone
        run_agent.set_threads(SimpleNamespace(threads=3, device="cpu"), demo)
        assert torch.get_num_threads() == 3  # --threads wins
    finally:
        torch.set_num_threads(before)
