"""The InterCode-SQL databases behind one small read-only interface: embedded SQLite (the default) or a
MySQL-compatible server (MariaDB, as InterCode's MySQL).

    db = open_database("world_1")                                       # SQLite, built once from the dump
    db = open_database("world_1", "mysql://lumos:lumos@127.0.0.1:3307")  # python -m lumos.envs.mariadb start
    db.tables()           -> ["city", "country", "countrylanguage"]      (lower case, sorted)
    db.describe("city")   -> [("ID", "INT"), ("Name", "CHAR(35)"), ...]
    db.execute("SELECT ...") -> Result(columns, rows, truncated)          rows: tuples as the driver returns them
    db.close()

SQL reaching a database is untrusted (a model wrote it), so every layer refuses writes on its own:
`check_statement` lets one SELECT-like statement through and nothing else (no ATTACH, PRAGMA, INTO,
LOAD_FILE, locking reads, second statements); SQLite opens the file with `mode=ro` behind an authorizer
that allows only reading, with a length limit on strings; the server user may only SELECT. Each
statement has a time limit (SQLite: a progress handler; MariaDB: `max_statement_time`, and the client
drops the connection when it reads too long) and at most `max_rows` rows are fetched. Every failure is
an `SQLError` with a one-line message.
"""
import re
import sqlite3
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from lumos.envs.sqldump import DEFAULT_DUMP, build_sqlite

TIME_LIMIT = 5.0        # seconds per statement
MAX_ROWS = 100_000      # rows fetched per statement (the reward compares all of them)
MAX_SQL_CHARS = 20_000


class SQLError(Exception):
    """A statement was refused or failed; str(err) is one line for the action record."""


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple]
    truncated: bool = False      # more than max_rows rows existed


# ---------------------------------------------------------------------------------------------
# the statement guard (the same for both backends)

_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`|\[[^\]]*\]", re.S)
_COMMENT = re.compile(r"/\*.*?(?:\*/|$)|--[^\n]*|#[^\n]*", re.S)
_FIRST = re.compile(r"[\s(]*([A-Za-z]+)")
_BANNED = re.compile(r"\b(INTO|ATTACH|DETACH|PRAGMA|LOAD_FILE|LOAD_EXTENSION|READFILE|WRITEFILE|OUTFILE|DUMPFILE|"
                     r"GET_LOCK|RELEASE_LOCK|RELEASE_ALL_LOCKS|FOR\s+UPDATE|LOCK\s+IN|FOR\s+SHARE|HANDLER|"
                     r"SETVAL|NEXTVAL|LASTVAL)\b", re.I)
READ_STARTS = ("SELECT", "WITH", "VALUES")


def check_statement(sql: str) -> str:
    """Return the one read-only statement in `sql` (trailing ';' and blanks removed) or raise SQLError."""
    if not isinstance(sql, str):
        raise SQLError(f"expected SQL text, got {type(sql).__name__}")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        raise SQLError("the statement is not valid UTF-8") from None
    if "\x00" in sql:
        raise SQLError("the statement contains a NUL character")
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if not sql:
        raise SQLError("empty statement")
    if len(sql) > MAX_SQL_CHARS:
        raise SQLError(f"statement too long ({len(sql)} characters; limit {MAX_SQL_CHARS})")
    bare = _COMMENT.sub(" ", _QUOTED.sub("''", sql))      # what is left outside strings and comments
    if bare.count("'") % 2 or bare.count('"') % 2 or bare.count("`") % 2:
        raise SQLError("unterminated string or quoted name")
    if ";" in bare:
        raise SQLError("one statement per action: found ';' inside")
    m = _FIRST.match(bare)
    if m is None or m.group(1).upper() not in READ_STARTS:
        word = m.group(1).upper() if m else bare.strip()[:20]
        raise SQLError(f"read-only database: {word} statements are not allowed (only SELECT, SHOW TABLES, DESCRIBE)")
    banned = _BANNED.search(bare)
    if banned:
        raise SQLError(f"read-only database: {' '.join(banned.group(1).upper().split())} is not allowed")
    return sql


def normalise_type(t: str) -> str:
    """MySQL column type as MySQL 8 prints it, upper case: 'int(11)' -> 'INT', 'varchar(255)' -> 'VARCHAR(255)'."""
    t = re.sub(r"^(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)", r"\1", t.strip(), flags=re.I)
    return t.upper()


# ---------------------------------------------------------------------------------------------
# embedded SQLite

_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _authorize(action, arg1, arg2, dbname, source):
    """SQLite authorizer: reading only. (A function call is allowed; load_extension is off in Python.)"""
    if action not in _ALLOWED:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in ("load_extension", "readfile", "writefile", "edit"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def mysql_ci(a: str, b: str) -> int:
    """MySQL's utf8mb4_general_ci, as far as Spider needs it: case-insensitive, trailing spaces ignored
    (PAD SPACE: 'Alton ' = 'alton'). Equal to SQLite's NOCASE on ASCII text without trailing spaces, so
    the NOCASE indexes of the file stay in order."""
    a, b = a.rstrip(" ").lower(), b.rstrip(" ").lower()
    return (a > b) - (a < b)


class SQLiteDatabase:
    backend = "sqlite"

    def __init__(self, path, name: str, time_limit: float = TIME_LIMIT, max_rows: int = MAX_ROWS):
        self.name, self.time_limit, self.max_rows = name, time_limit, max_rows
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self.conn.create_collation("NOCASE", mysql_ci)   # the file says NOCASE; compare as MySQL's _ci does
        cur = self.conn.cursor()    # the schema is read once, before the authorizer is in place
        names = [r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        self._tables = {n.lower(): n for n in names}
        self._columns = {n.lower(): [(r[1], normalise_type(r[2])) for r in cur.execute(f'PRAGMA table_info("{n}")')]
                         for n in names}
        self.conn.set_authorizer(_authorize)
        if hasattr(self.conn, "setlimit"):          # Python >= 3.11: no huge strings (zeroblob(1e9), repeat)
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000_000)
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 2)
            self.conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self._deadline = 0.0
        self.conn.set_progress_handler(lambda: time.monotonic() > self._deadline, 1000)

    def tables(self) -> list[str]:
        return sorted(self._tables)

    def describe(self, table: str) -> list[tuple[str, str]]:
        cols = self._columns.get(str(table).strip().strip("`\"").lower())
        if cols is None:
            raise SQLError(f"Table '{self.name}.{table}' doesn't exist")
        return cols

    def execute(self, sql: str) -> Result:
        sql = check_statement(sql)
        self._deadline = time.monotonic() + self.time_limit
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            rows = cur.fetchmany(self.max_rows + 1)
            columns = [d[0] for d in cur.description or []]
        except sqlite3.Error as err:
            if time.monotonic() > self._deadline:
                raise SQLError(f"statement exceeded the time limit ({self.time_limit:g} s)") from None
            raise SQLError(_one_line(err)) from None
        except (OverflowError, ValueError, MemoryError, RecursionError) as err:
            raise SQLError(f"{type(err).__name__}: {_one_line(err)}") from None
        finally:
            self._deadline = 0.0
            cur.close()
        return Result(columns, rows[:self.max_rows], len(rows) > self.max_rows)

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# a MySQL-compatible server (pymysql, pure Python)

class MySQLDatabase:
    backend = "mysql"

    def __init__(self, url: str, name: str, time_limit: float = TIME_LIMIT, max_rows: int = MAX_ROWS):
        u = urlparse(url)
        self.params = dict(host=u.hostname or "127.0.0.1", port=u.port or 3306, user=unquote(u.username or ""),
                           password=unquote(u.password or ""), database=name, charset="utf8mb4",
                           connect_timeout=10, read_timeout=time_limit + 5, write_timeout=10)
        self.name, self.time_limit, self.max_rows = name, time_limit, max_rows
        self.conn = None
        self._connect()
        self._tables = [r[0] for r in self._run("SHOW TABLES")[1]]

    def _connect(self):
        import pymysql
        try:
            self.conn = pymysql.connect(**self.params)
            with self.conn.cursor() as cur:
                cur.execute(f"SET SESSION max_statement_time = {float(self.time_limit)}")
        except pymysql.MySQLError as err:
            self.conn = None
            raise SQLError(f"cannot connect to {self.params['host']}:{self.params['port']} as "
                           f"{self.params['user']!r}: {_one_line(err)}") from None

    def _run(self, sql: str) -> tuple[list[str], list[tuple], bool]:
        import pymysql
        if self.conn is None:
            self._connect()
        cur = self.conn.cursor(pymysql.cursors.SSCursor)      # streamed: only max_rows + 1 are read
        t0 = time.monotonic()
        try:
            cur.execute(sql)
            columns = [d[0] for d in cur.description or []]
            rows = list(cur.fetchmany(self.max_rows + 1)) if cur.description else []
        except pymysql.MySQLError as err:
            code = err.args[0] if err.args and isinstance(err.args[0], int) else None
            timed_out = code == 1969 or time.monotonic() - t0 > self.time_limit
            if timed_out or code is None or code >= 2000:      # interrupted, or the connection is in doubt
                self._drop(cur)
            else:                                                # an ordinary SQL error: the session is fine
                cur.close()
            if timed_out:
                raise SQLError(f"statement exceeded the time limit ({self.time_limit:g} s)") from None
            raise SQLError(_one_line(err.args[1] if len(err.args) > 1 else err)) from None
        if len(rows) > self.max_rows:
            self._drop(cur)     # do not drain a huge result: the server aborts it when the socket closes
        else:
            cur.close()
        return columns, rows[:self.max_rows], len(rows) > self.max_rows

    def _drop(self, cur=None):
        """Close the connection without reading what is left of a streamed result (nor letting pymysql's
        finalisers try to); the next statement reconnects."""
        result = getattr(cur, "_result", None)
        if result is not None:
            result.unbuffered_active = False
        if cur is not None:
            cur.connection = None
        if self.conn is not None:
            try:
                self.conn._force_close() if hasattr(self.conn, "_force_close") else self.conn.close()
            except Exception:
                pass
        self.conn = None

    def tables(self) -> list[str]:
        return sorted(t.lower() for t in self._tables)

    def describe(self, table: str) -> list[tuple[str, str]]:
        key = str(table).strip().strip("`\"").lower()
        real = next((t for t in self._tables if t.lower() == key), None)
        if real is None:
            raise SQLError(f"Table '{self.name}.{table}' doesn't exist")
        return [(r[0], normalise_type(r[1])) for r in self._run(f"DESCRIBE `{real}`")[1]]

    def execute(self, sql: str) -> Result:
        return Result(*self._run(check_statement(sql)))

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def _one_line(err) -> str:
    return ((str(err).splitlines() or [""])[0].strip() or type(err).__name__)[:300]


def open_database(name: str, url: str = "sqlite", time_limit: float = TIME_LIMIT, max_rows: int = MAX_ROWS,
                  dump=DEFAULT_DUMP):
    """Database `name` on the backend `url`: 'sqlite' (built from `dump` into the cache on first use),
    'sqlite:///DIR' (a directory of <db>.sqlite files), or 'mysql://user:pass@host:port'."""
    if url == "sqlite" or url.startswith("sqlite:"):
        root = build_sqlite(dump) if url == "sqlite" else url.split("://", 1)[-1]
        from pathlib import Path
        path = Path(root) / f"{name}.sqlite"
        if not path.exists():
            raise SQLError(f"no database {name!r} in {root}")
        return SQLiteDatabase(path, name, time_limit, max_rows)
    if url.startswith(("mysql://", "mariadb://")):
        return MySQLDatabase(url, name, time_limit, max_rows)
    raise SQLError(f"unknown database URL {url!r} (expected 'sqlite' or mysql://user:pass@host:port)")
