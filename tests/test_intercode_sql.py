"""InterCode-SQL end to end on embedded SQLite: the SQL actions (lumos/tools/sql.py), the gold annotation
converter, the cross-database split, the SQL executor's episodes and reward, run_agent --task intercode_sql."""
import json
from collections import Counter
from types import SimpleNamespace

import pytest

from lumos.agent.agent import Agent
from lumos.agent.backends import GoldBackend
from lumos.agent.executor import SQLExecutor
from lumos.agent.tasks import TASKS, load_task, score
from lumos.agent.tasks.intercode_sql import TRAIN_DBS
from lumos.annotations.intercode_sql import gold_annotation, top_level_clauses
from lumos.envs.sql import open_database
from lumos.tools import ToolError
from lumos.tools.sql import format_rows, parse_sql_action


@pytest.mark.parametrize("piece, expected", [
    ("R1 = SHOW TABLES", (["R1"], "show", "SHOW TABLES")),
    ("Action 1-1: R1 = SHOW TABLES = airlines, airports", (["R1"], "show", "SHOW TABLES = airlines, airports")),
    ("R2 = DESCRIBE airports", (["R2"], "describe", "DESCRIBE airports")),
    ("R3 = desc `flights`;", (["R3"], "describe", "desc `flights`")),
    ("R5 = AirportName FROM airports", (["R5"], "fragment", "AirportName FROM airports")),
    ('R4 = GovernmentForm = "US Territory"', (["R4"], "fragment", 'GovernmentForm = "US Territory"')),
    ("R5 = ORDER BY Number_products DESC", (["R5"], "fragment", "ORDER BY Number_products DESC")),
    ("R7 = SELECT COUNT(*) FROM has_pet", (["R7"], "statement", "SELECT COUNT(*) FROM has_pet")),
    ("R8 = (SELECT 1) UNION (SELECT 2)", (["R8"], "statement", "(SELECT 1) UNION (SELECT 2)")),
    ("DROP TABLE city", ([], "statement", "DROP TABLE city")),
])
def test_parse_sql_action(piece, expected):
    assert parse_sql_action(piece) == expected


def test_parse_sql_action_refuses_empty():
    with pytest.raises(ToolError, match="no SQL after 'R1 ='"):
        parse_sql_action("R1 = ;")


def test_format_rows_caps_what_reaches_the_prompt():
    assert format_rows([("Abilene",), (None, 1.5)]) == "[('Abilene',), (None, 1.5)]"
    assert format_rows([(i,) for i in range(40)], max_rows=3) == "[(0,), (1,), (2,)] (40 rows; the first 3 shown)"
    assert format_rows([(1,)] * 5, truncated=True, max_rows=5) == "[(1,), (1,), (1,), (1,), (1,)] (5+ rows; the first 5 shown)"
    assert format_rows([("x" * 50,)], max_chars=10) == "[('xxxxxxx ... (1 rows; the first 1 shown)"


def test_top_level_clauses():
    sql = "SELECT a FROM t WHERE x IN (SELECT b FROM u WHERE c = 'ORDER BY') ORDER BY a DESC LIMIT 2"
    assert [(k, v) for k, v, _ in top_level_clauses(sql)] == [
        ("SELECT", "a"), ("FROM", "t"), ("WHERE", "x IN (SELECT b FROM u WHERE c = 'ORDER BY')"),
        ("ORDER BY", "a DESC"), ("LIMIT", "2")]


def test_gold_annotation_paper_example():
    """The first worked example of instruction_icode_sql, converted by our templates."""
    sql = ("SELECT AirportName FROM Airports WHERE AirportCode NOT IN "
           "(SELECT SourceAirport FROM Flights UNION SELECT DestAirport FROM Flights)")
    ann = gold_annotation("x", "Find the name of airports which do not have any flight in and out.", sql,
                          ["airlines", "airports", "flights"], ["uid", "AirportCode", "AirportName", "SourceAirport"])
    assert ann["subgoals"] == [
        "Subgoal 1: Find all the related tables.",
        "Subgoal 2: Describe the columns for all the related tables.",
        "Subgoal 3: Write the selection objects: AirportName in the airports table.",
        "Subgoal 4: Write the selection condition on AirportCode and SourceAirport.",
        "Subgoal 5: Finish the SQL query with the previous selection objects and conditions."]
    assert ann["actions"] == [
        "R1 = SHOW TABLES", "R2 = DESCRIBE airports; R3 = DESCRIBE flights", "R4 = AirportName FROM Airports",
        "R5 = AirportCode NOT IN (SELECT SourceAirport FROM Flights UNION SELECT DestAirport FROM Flights)", f"R6 = {sql}"]


def test_gold_annotation_grouping_ordering_and_set_operation():
    ann = gold_annotation("y", "q", "SELECT name FROM t GROUP BY name HAVING count(*) > 1 ORDER BY count(*) DESC LIMIT 3 "
                          "INTERSECT SELECT name FROM u;", ["t", "u"], ["name"])
    assert ann["subgoals"][2:] == [
        "Subgoal 3: Write the selection objects: name in the t table.",
        "Subgoal 4: Write the grouping: group the rows by name and keep the groups where count(*) > 1.",
        "Subgoal 5: Write the ordering: sort the rows by count(*) in descending order and keep the first 3.",
        "Subgoal 6: Write the intersection with a second query.",
        "Subgoal 7: Finish the SQL query with the previous selection objects and conditions."]
    assert ann["actions"][2:] == ["R4 = name FROM t", "R5 = GROUP BY name HAVING count(*) > 1",
                                  "R6 = ORDER BY count(*) DESC LIMIT 3", "R7 = INTERSECT SELECT name FROM u",
                                  "R8 = SELECT name FROM t GROUP BY name HAVING count(*) > 1 ORDER BY count(*) DESC "
                                  "LIMIT 3 INTERSECT SELECT name FROM u"]


def test_split_is_by_database():
    test = load_task("intercode_sql_test")
    every = load_task("intercode_sql")
    assert len(every) == 1034 and len(test) == 572
    assert not {e.meta["db"] for e in test} & TRAIN_DBS and len({e.meta["db"] for e in test}) == 10
    assert Counter(e.meta["hardness"] for e in every) == {"medium": 446, "easy": 248, "hard": 174, "extra": 166}
    assert every[0].id == "intercode_sql-dev-0" and every[0].meta["db"] == "poker_player"
    assert TASKS["intercode_sql"].family == "sql"


def test_every_gold_query_runs_on_sqlite():
    dbs, failed = {}, []
    for ex in load_task("intercode_sql"):
        if ex.meta["db"] not in dbs:
            dbs[ex.meta["db"]] = open_database(ex.meta["db"])
        try:
            dbs[ex.meta["db"]].execute(ex.answer)
        except Exception as err:
            failed.append((ex.id, str(err)))
    for db in dbs.values():
        db.close()
    assert len(dbs) == 20 and failed == []


def run_gold(examples, formulation="iterative"):
    rows = {e.id: e.meta["gold"] for e in examples}
    agent = Agent(GoldBackend(rows, "planner", formulation), GoldBackend(rows, "grounder", formulation),
                  SQLExecutor("sqlite"), "sql", formulation)
    return {ep.id: ep for ep in agent.run(examples, batch_size=8)}


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_gold_replay_succeeds(formulation):
    examples = load_task("intercode_sql", limit=40)
    eps = run_gold(examples, formulation)
    assert len(eps) == 40
    for ep in eps.values():
        assert ep.failure is None and ep.outcome["reward"] == 1.0 and score("intercode_sql", ep.prediction, ep.gold, ep.outcome)["correct"]
    first = eps["intercode_sql-dev-0"]
    actions = [a for s in first.steps for a in s.get("actions", [])]
    assert actions[0]["result"] == "people, poker_player"
    assert actions[1]["result"].startswith("People_ID (type: INT), Nationality (type: TEXT), Name (type: TEXT)")
    assert first.outcome["n_rows"] == first.outcome["gold_n_rows"] == 5


def episode(grounding, question="q", gold="SELECT Name FROM singer ORDER BY Name", db="singer"):
    ex = SimpleNamespace(id="e", question=question, answer=gold, meta={"db": db, "hardness": "easy"})
    ex2 = SimpleNamespace(**vars(ex))
    rows = {"e": {"subgoals": ["Subgoal 1: Do it."], "actions": [grounding]}}
    agent = Agent(GoldBackend(rows, "planner", "onetime"), GoldBackend(rows, "grounder", "onetime"),
                  SQLExecutor("sqlite"), "sql", "onetime")
    (ep,) = list(agent.run([ex2], batch_size=1))
    return ep, [a for s in ep.steps for a in s.get("actions", [])]


def test_bad_statements_are_recorded_errors_and_score_zero():
    ep, acts = episode("R1 = DROP TABLE singer")
    assert ep.failure == "execution_error" and "DROP statements are not allowed" in acts[0]["error"]
    assert ep.outcome["reward"] == 0.0 and ep.outcome["query"] is None
    ep, acts = episode("R1 = SELECT Name FROM singer ORDER BY Name; R2 = SELECT nosuchcolumn FROM singer")
    assert acts[0]["error"] is None and "no such column" in acts[1]["error"]
    assert ep.outcome["reward"] == 1.0        # the last SELECT that ran is the answer
    ep, acts = episode("R1 = SELECT Name FROM singer ORDER BY Name DESC")
    assert ep.failure is None and ep.outcome["reward"] == -1.0        # InterCode: same rows, reversed order
    ep, acts = episode("R1 = SELECT Name FROM singer WHERE Singer_ID < 3 ORDER BY Name")
    assert 0 < ep.outcome["reward"] < 1


def test_run_agent_intercode_sql(tmp_path):
    import run_agent
    out = tmp_path / "sql.jsonl"
    assert run_agent.main(["--task", "intercode_sql", "--backend", "gold", "--limit", "12", "--out", str(out)]) == 0
    summary = json.loads(out.with_name("sql.summary.json").read_text())
    assert summary["n"] == 12 and summary["metrics"]["success"] == 1.0 and summary["metrics"]["corrupt_gold"] == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert row["outcome"]["reward"] == 1.0 and row["score"]["hardness"] in ("easy", "medium", "hard", "extra")
    with pytest.raises(SystemExit):
        run_agent.parse_args(["--task", "intercode_sql", "--db", "postgres://x"])


def test_training_files_hold_train_databases_only(tmp_path):
    from lumos.agent.tasks import DATA_DIR
    from lumos.annotations.format import read_conversations
    from lumos.annotations.intercode_sql import write_training_files
    (tmp_path / "intercode-sql").mkdir()
    (tmp_path / "intercode-sql" / "ic_spider_dev.json").write_bytes((DATA_DIR / "intercode-sql" / "ic_spider_dev.json").read_bytes())
    assert write_training_files(tmp_path, quiet=True) == {"converted": 462, "dropped": 0}
    test_questions = {e.question for e in load_task("intercode_sql_test")}
    train = {e.id: e for e in load_task("intercode_sql") if e.meta["db"] in TRAIN_DBS}
    for kind in ("plan_iterative", "plan_onetime", "ground_iterative", "ground_onetime"):
        rows = read_conversations(tmp_path / "annotations" / f"lumos_sql_{kind}.jsonl")
        assert len(rows) == 462 and {r["id"] for r in rows} == set(train)
        assert not {train[r["id"]].question for r in rows} & test_questions
    plan = {r["id"]: r for r in read_conversations(tmp_path / "annotations" / "lumos_sql_plan_iterative.jsonl")}
    msgs = plan["intercode_sql-dev-1"]["messages"]      # the paper's first worked example is Spider dev 1
    assert msgs[1]["content"] == "Subgoal 1: Find all the related tables."
    assert msgs[2]["content"] == "The executed result for Subgoal 1 is airlines, airports, flights. Should we stop planning?"
    assert msgs[-1]["content"] == "Yes, I will stop planning."
