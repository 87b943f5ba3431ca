"""The SQL actions of a Lumos grounding (InterCode-SQL), in the paper's form (annotation prompt
`instruction_icode_sql`): each action is `R_j = <SQL>`, and what the SQL is decides what happens.

    R1 = SHOW TABLES                          -> "airlines, airports, flights"
    R2 = DESCRIBE airports                    -> "City (type: TEXT), AirportCode (type: VARCHAR(255)), ..."
    R5 = AirportName FROM airports            -> a fragment: bound to R5 as written, not executed
    R6 = AirportCode NOT IN (SELECT ...)      -> a fragment
    R7 = SELECT AirportName FROM airports WHERE AirportCode NOT IN (...)
                                              -> executed; its rows as InterCode shows them, "[('Abilene',), ...]"

A full statement (SELECT / WITH / VALUES, or anything that is not a fragment, e.g. DROP TABLE) goes to the
database, whose guard refuses all but one read-only statement (lumos/envs/sql.py). The rows of the last
SELECT that ran are the task's answer; the prompt sees at most SHOWN_ROWS of them (SHOWN_CHARS characters).
"""
import re

from lumos.tools import ToolError

SHOWN_ROWS, SHOWN_CHARS = 30, 2_000
_ASSIGN = re.compile(r"\s*(?:Action\s*\d+(?:\s*-\s*\d+)?\s*:\s*)?(?:(R\d+)\s*=(?!=)\s*)?(.*)", re.S | re.I)
_SHOW_TABLES = re.compile(r"SHOW\s+(?:FULL\s+)?TABLES\b", re.I)
_DESCRIBE = re.compile(r"(?:DESCRIBE|DESC|SHOW\s+(?:FULL\s+)?COLUMNS\s+(?:FROM|IN))\s+([`\"\[]?[\w$]+[`\"\]]?)\s*(?:=.*)?$",
                       re.I | re.S)
# first words that make a piece a statement for the database (which refuses all but reads); anything
# else (AirportName FROM ..., ORDER BY ..., T1.age > 20, INTERSECT SELECT ...) is a fragment
STATEMENT_WORDS = frozenset(
    "SELECT WITH VALUES SHOW DESCRIBE DESC EXPLAIN INSERT UPDATE DELETE DROP CREATE ALTER ATTACH DETACH PRAGMA "
    "REPLACE TRUNCATE GRANT REVOKE SET USE CALL LOAD LOCK UNLOCK BEGIN START COMMIT ROLLBACK SAVEPOINT RELEASE "
    "VACUUM ANALYZE REINDEX RENAME HANDLER DO PREPARE EXECUTE DEALLOCATE FLUSH KILL OPTIMIZE REPAIR CHECKSUM "
    "INSTALL UNINSTALL SHUTDOWN XA RESET PURGE CHANGE BINLOG CACHE SIGNAL RESIGNAL HELP MERGE UPSERT BACKUP "
    "RESTORE COPY IMPORT EXPORT".split())


def parse_sql_action(piece: str) -> tuple[list[str], str, str]:
    """'R7 = SELECT ...' -> (["R7"], kind, sql) with kind 'show', 'describe', 'statement' or 'fragment'.
    The annotation form 'Action 1-1: R1 = SHOW TABLES = a, b' is accepted for SHOW TABLES / DESCRIBE."""
    m = _ASSIGN.match(piece)
    outputs, sql = ([m.group(1).upper()] if m.group(1) else []), m.group(2).strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if not sql:
        raise ToolError(f"no SQL after '{outputs[0]} ='" if outputs else "empty action")
    if _SHOW_TABLES.match(sql):
        return outputs, "show", sql
    if _DESCRIBE.match(sql):
        return outputs, "describe", sql
    first = re.match(r"[\s(]*([A-Za-z_]+)", sql)
    if first and first.group(1).upper() in STATEMENT_WORDS:
        return outputs, "statement", sql
    return outputs, "fragment", sql


def format_rows(rows: list[tuple], truncated: bool = False, max_rows: int = SHOWN_ROWS, max_chars: int = SHOWN_CHARS) -> str:
    """Rows as InterCode's observation prints them, `[('Abilene',), ('Aberdeen',)]`, capped for the prompt."""
    shown = rows[:max_rows]
    text = str([tuple(r) for r in shown])
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    if len(rows) > len(shown) or truncated or text.endswith(" ..."):
        text += f" ({len(rows)}{'+' if truncated else ''} rows; the first {min(len(shown), len(rows))} shown)"
    return text


class SQLSession:
    """One episode's database: `db` (lumos.envs.sql) plus the last SELECT that ran (the answer)."""

    def __init__(self, db):
        self.db = db
        self.last_query: str | None = None
        self.last_rows: list[tuple] | None = None
        self.last_truncated = False

    def act(self, kind: str, sql: str) -> str:
        """Run one parsed action; -> its observation text. Raises ToolError (one line) on any failure."""
        from lumos.envs.sql import SQLError
        try:
            if kind == "fragment":
                return sql
            if kind == "show":
                return ", ".join(self.db.tables())
            if kind == "describe":
                table = _DESCRIBE.match(sql).group(1).strip("`\"[]")
                return ", ".join(f"{c} (type: {t})" for c, t in self.db.describe(table))
            res = self.db.execute(sql)
        except SQLError as err:
            raise ToolError(str(err)) from None
        self.last_query, self.last_rows, self.last_truncated = sql, res.rows, res.truncated
        return format_rows(res.rows, res.truncated)

    def close(self):
        self.db.close()
