"""Spider gold SQL -> Lumos SQL annotations, deterministically, in the paper's `instruction_icode_sql` shape.

    SELECT AirportName FROM AIRPORTS WHERE AirportCode NOT IN (SELECT SourceAirport FROM FLIGHTS)
->
    Subgoal 1: Find all the related tables.                      R1 = SHOW TABLES
    Subgoal 2: Describe the columns for all the related tables.  R2 = DESCRIBE airports; R3 = DESCRIBE flights
    Subgoal 3: Write the selection objects: AirportName in the airports table.
                                                                 R4 = AirportName FROM AIRPORTS
    Subgoal 4: Write the selection condition on AirportCode.     R5 = AirportCode NOT IN (SELECT SourceAirport FROM FLIGHTS)
    Subgoal 5: Finish the SQL query with the previous selection objects and conditions.
                                                                 R6 = SELECT AirportName FROM AIRPORTS WHERE ...

The paper had GPT-4 paraphrase each subgoal from the question; here the subgoal text is a template
naming the tables and columns each clause uses. Clauses are found at the top level of the first SELECT
(quotes and brackets respected): the objects (SELECT list + FROM), the condition (WHERE), the grouping
(GROUP BY/HAVING), the ordering (ORDER BY/LIMIT), and a set operation (UNION/INTERSECT/EXCEPT + the
second query) as a fragment each; the last action is the whole gold query, whose rows are the answer.
"""
import re
import sys

_KEYWORDS = re.compile(r"\b(SELECT|FROM|WHERE|GROUP\s+BY|HAVING|ORDER\s+BY|LIMIT|UNION(?:\s+ALL)?|INTERSECT|EXCEPT)\b", re.I)
_SET_OPS = {"UNION": "union", "UNION ALL": "union", "INTERSECT": "intersection", "EXCEPT": "difference"}
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+`?([A-Za-z_]\w*)", re.I)


def top_level_clauses(sql: str) -> list[tuple[str, str, int]]:
    """[(KEYWORD, text after it, where the keyword starts), ...] for the keywords outside brackets and
    quotes, in order. 'SELECT a FROM t WHERE x > (SELECT 1)' ->
    [('SELECT', 'a', 0), ('FROM', 't', 9), ('WHERE', 'x > (SELECT 1)', 16)]."""
    depth, quote, marks = 0, None, []
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _KEYWORDS.match(sql, i)
            if m:
                marks.append((m.start(), m.end(), " ".join(m.group(1).upper().split())))
                i = m.end()
                continue
        i += 1
    return [(kw, sql[end:(marks[k + 1][0] if k + 1 < len(marks) else len(sql))].strip(), start)
            for k, (start, end, kw) in enumerate(marks)]


def _names_in(text: str, names: list[str]) -> list[str]:
    """The `names` (columns or tables) that `text` mentions as words, in order of first mention."""
    found = []
    for m in re.finditer(r"[A-Za-z_]\w*", text):
        for n in names:
            if m.group().lower() == n.lower() and n not in found:
                found.append(n)
    return found


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def gold_annotation(id: str, question: str, gold_sql: str, tables: list[str], columns: list[str] | None = None) -> dict:
    """One task -> {"id", "question", "answer", "subgoals", "actions"} (one '; '-joined grounding per
    subgoal), replayable by the gold backend. tables: the database's tables; columns: its column names
    (for the subgoal text; default: the words of the clause)."""
    sql = gold_sql.strip().rstrip(";").strip()
    clauses = top_level_clauses(sql)
    kws = [c[0] for c in clauses]
    set_at = next((k for k, kw in enumerate(kws) if kw in _SET_OPS), len(clauses))
    first = {kw: text for kw, text, _ in clauses[:set_at]} if kws[:1] == ["SELECT"] and len(set(kws[:set_at])) == set_at else None
    real = {t.lower(): t for t in tables if not t.startswith("sqlite_")}
    used = [t.lower() for t in dict.fromkeys(m.group(1).lower() for m in _TABLE_REF.finditer(sql)) if t in real]
    used = used or sorted(real)
    subgoals = ["Subgoal 1: Find all the related tables.", "Subgoal 2: Describe the columns for all the related tables."]
    fragments = ["SHOW TABLES", None]
    describe = [f"DESCRIBE {t}" for t in used]

    def words(text):
        return _names_in(text, columns or [])
    if first is not None and "FROM" in first:
        tabs = [t for t in used if t in {m.lower() for m in re.findall(r"[A-Za-z_]\w*", first["FROM"])}] or used
        subgoals.append(f"Write the selection objects: {first['SELECT']} in the {_join(tabs)} table{'s' if len(tabs) > 1 else ''}.")
        fragments.append(f"{first['SELECT']} FROM {first['FROM']}")
        if "WHERE" in first:
            cols = words(first["WHERE"])
            subgoals.append("Write the selection condition" + (f" on {_join(cols)}." if cols else "."))
            fragments.append(first["WHERE"])
        if "GROUP BY" in first:
            text = f"Write the grouping: group the rows by {first['GROUP BY']}"
            if "HAVING" in first:
                text += f" and keep the groups where {first['HAVING']}"
            subgoals.append(text + ".")
            fragments.append(f"GROUP BY {first['GROUP BY']}" + (f" HAVING {first['HAVING']}" if "HAVING" in first else ""))
        if "ORDER BY" in first or "LIMIT" in first:
            order = first.get("ORDER BY")
            text = "Write the ordering: " if order else "Write the limit: "
            if order:
                cols = words(order)
                way = "descending" if re.search(r"\bDESC\b", order, re.I) else "ascending"
                key = _join(cols) if cols else re.sub(r"\s+(ASC|DESC)\b", "", order, flags=re.I)
                text += f"sort the rows by {key} in {way} order"
            if "LIMIT" in first:
                text += (" and " if order else "") + f"keep the first {first['LIMIT']}"
            subgoals.append(text + ".")
            fragments.append(" ".join(x for x in (order and f"ORDER BY {order}", "LIMIT" in first and f"LIMIT {first['LIMIT']}") if x))
        if set_at < len(clauses):
            subgoals.append(f"Write the {_SET_OPS[kws[set_at]]} with a second query.")
            fragments.append(sql[clauses[set_at][2]:].strip())
    subgoals.append("Finish the SQL query with the previous selection objects and conditions.")
    fragments.append(sql)
    subgoals = [s if s.startswith("Subgoal") else f"Subgoal {k}: {s}" for k, s in enumerate(subgoals, 1)]
    actions, r = [], 1
    for frag in fragments:
        if frag is None:
            actions.append("; ".join(f"R{r + j} = {d}" for j, d in enumerate(describe)))
            r += len(describe)
        else:
            actions.append(f"R{r} = {frag}")
            r += 1
    return {"id": id, "question": question, "answer": gold_sql, "subgoals": subgoals, "actions": actions}



def executed_results(ann: dict, db) -> list[str]:
    """The result of each subgoal's last action when the annotation runs on `db` (lumos.envs.sql), as
    the Lumos-I planner is told it ('The executed result for Subgoal k is ...')."""
    from lumos.agent.executor import split_actions      # the grounding splitter the agent uses
    from lumos.tools.sql import SQLSession, parse_sql_action
    session, out = SQLSession(db), []
    for grounding in ann["actions"]:
        value = None
        for piece in split_actions(grounding):
            _, kind, sql = parse_sql_action(piece)
            value = session.act(kind, sql)
        out.append(value)
    return out


def write_training_files(data_dir="data", quiet: bool = False) -> dict:
    """data/annotations/lumos_sql_{plan,ground}_{iterative,onetime}.jsonl from the TRAIN_DBS tasks only
    (results executed on embedded SQLite); a task whose gold does not run is left out. -> counts."""
    from pathlib import Path

    from lumos.agent.executor import split_actions
    from lumos.agent.tasks.intercode_sql import load_intercode_sql
    from lumos.annotations.build import KINDS, build_rows, dataset_filename
    from lumos.annotations.format import write_jsonl
    from lumos.envs.sql import SQLError, open_database
    from lumos.tools import ToolError
    data_dir = Path(data_dir)
    rows, dbs, dropped = {k: [] for k in KINDS}, {}, []
    for ex in load_intercode_sql(data_dir / "intercode-sql" / "ic_spider_dev.json", "train"):
        ann = ex.meta["gold"]
        db = dbs.get(ex.meta["db"]) or dbs.setdefault(ex.meta["db"], open_database(ex.meta["db"]))
        try:
            results = executed_results(ann, db)
        except (SQLError, ToolError) as err:
            dropped.append((ex.id, str(err)))
            continue
        built = build_rows("intercode_sql", ex.id, ex.question, ann["subgoals"],
                           [split_actions(a) for a in ann["actions"]], results, "sql")
        for k in KINDS:
            rows[k].append(built[k])
    for db in dbs.values():
        db.close()
    for k in KINDS:
        write_jsonl(data_dir / "annotations" / dataset_filename("sql", k), rows[k])
    if not quiet:
        print(f"intercode_sql train databases: {len(rows[KINDS[0]])} tasks converted, {len(dropped)} dropped", file=sys.stderr)
    return {"converted": len(rows[KINDS[0]]), "dropped": len(dropped)}
