"""Mind2Web: the loader on the fixture, pruning, the CLICK/TYPE/SELECT parser, the metrics by hand,
malformed web actions as recorded errors, and gold replay through the agent."""
import json
import pickle
from pathlib import Path

import pytest

from lumos.agent.agent import Agent
from lumos.agent.backends import Completion, GoldBackend
from lumos.agent.executor import mind2web_executor
from lumos.agent.tasks import load_task, score
from lumos.agent.tasks.mind2web import (aggregate, describe_step, gold_annotation, load_mind2web, load_scores, op_f1,
                                        read_split, score_task)
from lumos.envs.mind2web import RecordedPage, prune, step_elements
from lumos.tools import ToolError
from lumos.tools.web import BM25Ranker, Element, OracleRanker, parse_web_args

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/mind2web"


def test_fixture_follows_the_released_schema():
    tasks = read_split(DATA, "test_task")
    assert [t["website"] for t in tasks] == ["united", "carmax", "nypl"]
    for t in tasks:
        assert set(t) >= {"annotation_id", "confirmed_task", "website", "action_reprs", "actions"}
        assert len(t["action_reprs"]) == len(t["actions"])
        for a in t["actions"]:
            assert set(a) >= {"action_uid", "raw_html", "cleaned_html", "operation", "pos_candidates", "neg_candidates"}
            assert a["operation"]["op"] in ("CLICK", "TYPE", "SELECT") and "original_op" in a["operation"]
            for c in a["pos_candidates"] + a["neg_candidates"]:
                attrs = json.loads(c["attributes"])               # a JSON string, as released
                assert attrs["backend_node_id"] == c["backend_node_id"] and f'backend_node_id="{c["backend_node_id"]}"' in a["cleaned_html"]


def test_loader_examples_and_gold():
    exs = load_task("mind2web")
    assert [len(e.answer) for e in exs] == [7, 4, 2]
    e = exs[0]
    assert e.id == "mind2web-test_task-f1b0c3a2-7e1d-4f2b-9c7a-0a11b2c3d4e5"
    assert e.question == "Find one-way flights from New York to Toronto for 2 adults."
    assert e.answer[5] == {"pos": ["135"], "op": "SELECT", "value": "2 Adults"}
    steps = e.meta["steps"]
    assert [sum(x.positive for x in s) for s in steps] == [1] * 7 and len(steps[5]) == 23
    sel = next(x for x in steps[5] if x.id == "135")
    assert sel.tag == "select" and sel.options == ["1 Adult", "2 Adults", "3 Adults", "4 Adults", "5 Adults"]
    assert sel.text == "select Number of travelers travelers 1 Adult 2 Adults 3 Adults 4 Adults 5 Adults"
    ids = [int(x.id) for x in steps[5]]
    assert ids == sorted(ids)                                   # document order: no tie favours the gold
    assert e.meta["gold"]["actions"][1] == "R2 = TYPE(R1, QUERY: Type New York in the combobox From*, TEXT: New York)"
    assert e.meta["gold"]["subgoals"][6] == "Subgoal 7: Click the button Find flights."
    assert describe_step("[link]  Holiday closings -> CLICK", "CLICK", "") == "Click the link Holiday closings"
    assert describe_step("[svg]   -> CLICK", "CLICK", "") == "Click the svg"
    assert load_mind2web(DATA, "train")[0].answer == [{"pos": ["121"], "op": "CLICK", "value": ""}]   # the SUVs link
    with pytest.raises(ValueError, match="unknown Mind2Web split"):
        load_mind2web(DATA, "dev")


def test_candidate_scores_keep_the_top_k(tmp_path):
    t = read_split(DATA, "test_task")[2]
    sid = f"{t['annotation_id']}_{t['actions'][0]['action_uid']}"
    ranks = {"ranks": {sid: {"108": 0, "104": 1, "106": 2}}, "scores": {sid: {"108": 3.0, "104": 2.0, "106": 1.0}}}
    (tmp_path / "s.pkl").write_bytes(pickle.dumps(ranks))
    assert load_scores(tmp_path / "s.pkl") == {sid: {"108": 0, "104": 1, "106": 2}}
    ex = load_mind2web(DATA, "test_task", scores=tmp_path / "s.pkl", top_k=2)[2]
    assert [x.id for x in ex.meta["steps"][0]] == ["104", "108"]     # rank 2 and the unranked dropped
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"ranks": {sid: {"1": Path("x")}}}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_scores(tmp_path / "evil.pkl")


HTML = ('<html backend_node_id="1"><body backend_node_id="2"><div backend_node_id="3">'
        '<a backend_node_id="4" aria_label="Home"><text backend_node_id="5">Home</text></a>'
        '<p backend_node_id="6"><text backend_node_id="7">Far away text</text></p></div>'
        '<footer backend_node_id="8"><a backend_node_id="9"><text backend_node_id="10">Contact</text></a></footer></body></html>')


def test_prune_keeps_candidates_ancestors_and_near_siblings():
    assert prune(HTML, ["4"], max_sibling=0) == "(html (a id=4 Home Home))"
    assert prune(HTML, ["4"]) == "(html (div (a id=4 Home Home) Far away text))"
    assert prune(HTML, ["4", "9"], max_sibling=0) == "(html (body (a id=4 Home Home) (a id=9 Contact)))"
    action = {"cleaned_html": HTML, "pos_candidates": [{"backend_node_id": "9", "tag": "a"}],
              "neg_candidates": [{"backend_node_id": "4", "tag": "a"},
                                 {"backend_node_id": "77", "tag": "button", "attributes": '{"aria_label": "Gone"}'}]}
    els = step_elements(action)
    assert [(x.id, x.text, x.positive) for x in els] == [("4", "a Home Home", False), ("9", "a Contact", True),
                                                         ("77", "button Gone", False)]


def test_parse_web_args():
    assert parse_web_args("CLICK", "Env, QUERY: Enter the site for flight + cruise") == ("Env", "Enter the site for flight + cruise", "")
    assert parse_web_args("TYPE", "R2, QUERY: Type Atlanta as the departure, TEXT: Atlanta") == ("R2", "Type Atlanta as the departure", "Atlanta")
    assert parse_web_args("SELECT", 'R6, Query: the text box, TEXT: "6 nights"') == ("R6", "the text box", "6 nights")
    # only the LAST ", TEXT:" separates the value
    assert parse_web_args("TYPE", "Env, QUERY: a, TEXT: b, TEXT: c") == ("Env", "a, TEXT: b", "c")
    for op, args, msg in [("CLICK", "QUERY: x", "page it acts on"), ("CLICK", "Env", "needs 'QUERY"),
                          ("CLICK", "Env, QUERY:  ", "empty QUERY"), ("CLICK", "Env, QUERY: x, TEXT: y", "no TEXT"),
                          ("TYPE", "Env, QUERY: x", "non-empty 'TEXT"), ("SELECT", "R1, QUERY: x, TEXT: ''", "non-empty"),
                          ("CLICK", "Env, junk QUERY: x", "needs 'QUERY")]:
        with pytest.raises(ToolError, match=msg):
            parse_web_args(op, args)


def test_rankers():
    els = [Element("1", "button", "button Okay", "Okay"), Element("2", "button", "button okay", "okay"),
           Element("3", "a", "a Find flight deals", "Find flight deals", positive=True)]
    assert BM25Ranker()('Click on the "okay" button.', els)[0] == 1   # BM25 ties; the verbatim text decides
    assert BM25Ranker()('Click on the "Okay" button.', els)[0] == 0
    assert BM25Ranker()("flight deals", els)[0] == 2
    assert OracleRanker()("anything", els)[0] == 2


def test_op_f1_by_hand():
    assert op_f1("TYPE New York", "TYPE New York") == 1.0
    assert op_f1("TYPE new york", "TYPE New York") == pytest.approx(1 / 3)   # case-sensitive, as MindAct
    assert op_f1("SELECT 2 Adults", "SELECT 2 Adults Economy") == pytest.approx(2 * 0.75 / 1.75)
    assert op_f1("TYPE Toronto", "CLICK") == 0.0 and op_f1("", "") == 1.0 and op_f1("CLICK", "") == 0.0


def test_metrics_by_hand():
    gold_a = [{"pos": ["1"], "op": "CLICK", "value": ""}, {"pos": ["2", "3"], "op": "TYPE", "value": "New York"},
              {"pos": ["4"], "op": "TYPE", "value": "New York"}]
    pred_a = [{"element": "1", "op": "CLICK", "value": ""},                  # right
              {"element": "9", "op": "TYPE", "value": "New York"},           # wrong element, F1 1
              {"element": "4", "op": "TYPE", "value": "new york"}]           # right element, F1 1/3
    gold_b = [{"pos": ["5"], "op": "SELECT", "value": "2 Adults"}]
    a, b = score_task(pred_a, gold_a), score_task([{"element": 5, "op": "SELECT", "value": "2 Adults"}], gold_b)
    assert a["steps"] == [{"element": 1, "f1": 1.0, "success": 1}, {"element": 0, "f1": 1.0, "success": 0},
                          {"element": 1, "f1": pytest.approx(1 / 3), "success": 0}]
    assert (a["correct"], a["em"], b["correct"]) == (False, pytest.approx(1 / 3), True)
    m = aggregate([a, b])
    assert m["element_acc"] == pytest.approx(3 / 4) and m["op_f1"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert m["step_sr"] == pytest.approx(2 / 4) and m["task_sr"] == pytest.approx(1 / 2) and m["n_steps"] == 4
    assert m["macro_element_acc"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["macro_op_f1"] == pytest.approx(((1 + 1 + 1 / 3) / 3 + 1) / 2)
    assert m["macro_step_sr"] == pytest.approx((1 / 3 + 1) / 2)
    # a step never acted on counts 0; score() reads the executor's outcome
    s = score("mind2web", None, gold_a, {"steps": pred_a[:1]})
    assert [x["success"] for x in s["steps"]] == [1, 0, 0] and s["correct"] is False
    assert score("mind2web", None, gold_b, None)["steps"] == [{"element": 0, "f1": 0.0, "success": 0}]


def _step5_env():
    ex = load_task("mind2web")[0]
    page = RecordedPage(ex.meta["steps"][5:6])
    return {"Env": page}, page


@pytest.mark.parametrize("grounding,error", [
    ("R1 = CLICK(R9, QUERY: the travelers box)", "undefined variable R9"),
    ("R1 = CLICK(Foo, QUERY: the travelers box)", "page it acts on"),
    ("R1 = CLICK(Env, QUERY: )", "empty QUERY"),
    ("R1 = CLICK(Env)", "needs 'QUERY"),
    ("R1 = TYPE(Env, QUERY: the travelers box)", "TEXT"),
    ("R1 = SELECT(Env, QUERY: number of travelers, TEXT: 9 Adults)", "no option '9 Adults'"),
    ("R1 = HOVER(Env, QUERY: travelers)", "unknown tool 'HOVER'"),
    ("click the travelers box", "not an action"),
    ("R1 = CLICK(Env, QUERY: (unbalanced", "unbalanced"),
])
def test_malformed_web_actions_are_recorded_errors(grounding, error):
    env, page = _step5_env()
    (rec,) = mind2web_executor().run(grounding, env)
    assert error in rec.error and rec.result is None and "R1" not in env and page.predictions == []


def test_select_and_running_past_the_last_step():
    env, page = _step5_env()
    ex = mind2web_executor()
    recs = ex.run("R1 = SELECT(Env, QUERY: number of travelers, TEXT: 2 adults); R2 = CLICK(R1, QUERY: find flights)", env)
    assert recs[0].error is None and recs[0].result.endswith("-> 2 Adults")      # the option's own text
    assert page.predictions == [{"element": "135", "op": "SELECT", "value": "2 Adults"}]
    assert "all were acted on" in recs[1].error and "R2" not in env


class _Scripted:
    """A unit-test backend answering every prompt with one fixed text."""
    def __init__(self, text):
        self.text = text

    def complete(self, prompts, ids=None):
        return [Completion(self.text) for _ in prompts]


def _run(planner, grounder, ranker, formulation="iterative"):
    exs = load_task("mind2web")
    agent = Agent(planner, grounder, mind2web_executor(ranker), "web_agent", formulation, max_rounds=64)
    eps = {e.id: e for e in agent.run(exs, batch_size=2)}
    return [score("mind2web", eps[x.id].prediction, x.answer, eps[x.id].outcome) for x in exs], eps


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_gold_replay_through_the_agent(formulation):
    rows = {e.id: e.meta["gold"] for e in load_task("mind2web")}
    gold = lambda m: GoldBackend(rows, m, formulation)
    scores, eps = _run(gold("planner"), gold("grounder"), OracleRanker(), formulation)
    assert aggregate(scores)["step_sr"] == 1.0 and all(e.failure is None for e in eps.values())
    scores, _ = _run(gold("planner"), gold("grounder"), BM25Ranker(), formulation)
    m = aggregate(scores)        # what BM25 reaches from the gold queries (the README's number)
    assert m["n_steps"] == 13 and m["step_sr"] == pytest.approx(12 / 13) and m["task_sr"] == pytest.approx(2 / 3)


def test_malformed_grounder_ends_the_episode_without_raising():
    rows = {e.id: e.meta["gold"] for e in load_task("mind2web")}
    scores, eps = _run(GoldBackend(rows, "planner", "iterative"), _Scripted("R1 = CLICK(R4, QUERY: x)"), BM25Ranker())
    assert all(e.failure == "execution_error" for e in eps.values())
    assert all(s["em"] == 0.0 for s in scores)
    assert "undefined variable R4" in next(iter(eps.values())).steps[1]["actions"][0]["error"]


def test_run_agent_cli(tmp_path, capsys):
    import run_agent
    out = tmp_path / "t.jsonl"
    assert run_agent.main(["--task", "mind2web", "--backend", "gold", "--ranker", "oracle", "--out", str(out)]) == 0
    summary = json.loads(out.with_name("t.summary.json").read_text())
    assert summary["metrics"]["step_sr"] == 1.0 and summary["metrics"]["task_sr"] == 1.0 and summary["n"] == 3
    row = json.loads(out.read_text().splitlines()[0])
    assert len(row["outcome"]["steps"]) == len(row["gold"]) and row["score"]["correct"]
    with pytest.raises(SystemExit) as e:
        run_agent.main(["--task", "mind2web", "--backend", "gold", "--mind2web-data", str(tmp_path / "none")])
    assert e.value.code == 2 and "no Mind2Web files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_agent.main(["--task", "gsm8k", "--ranker", "oracle"])
