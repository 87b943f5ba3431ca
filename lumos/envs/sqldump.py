"""The InterCode-SQL dump (a MySQL 8 `mysqldump` of the 20 Spider dev databases) -> statements,
and the embedded default: one SQLite file per database, built once into a cache.

    for stmt in statements(dump_text): ...            # top-level statements, quotes and comments respected
    build_sqlite(dump_path) -> Path                    # $LUMOS_CACHE/intercode_sql/<hash>/<db>.sqlite

The SQLite build is deterministic (same dump + same converter = the same bytes): it reads only the
dump's `CREATE DATABASE`, `CREATE TABLE` and `INSERT` statements and writes them in order, with
- each column keeping its declared MySQL type (`varchar(255)`, `float(10,2)`: SQLite takes its
  affinity from it and DESCRIBE shows it), PRIMARY KEY and FOREIGN KEY clauses kept, plain KEYs dropped;
- text columns declared `COLLATE NOCASE`, since the dump's `utf8mb4_general_ci` makes MySQL compare
  strings case-insensitively (Spider's gold writes 'france' for 'France');
- MySQL string escapes (`\\'`, `\\n`, ...) decoded and every value bound as a parameter, never spliced.
"""
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path

from lumos.envs import cache_root

CONVERTER_VERSION = 1   # bump when build_sqlite's output changes: the cache key includes it
DEFAULT_DUMP = Path(__file__).resolve().parents[2] / "data" / "intercode-sql" / "ic_spider_dbs.sql"

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}   # else: the char itself


def statements(text: str, keep_comments: bool = False):
    """Yield the top-level statements of a MySQL script, without their ';'. Quotes ('..', "..", `..`
    with backslash escapes), `-- ` / `#` line comments and `/* */` comments are respected; comments
    are dropped unless keep_comments (MySQL's versioned `/*!40101 ... */` ones matter to a server)."""
    out, i, n, start = [], 0, len(text), 0
    buf = []
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" and ch != "`" else 1
            i = j + 1
            continue
        if text.startswith("--", i) and (i + 2 >= n or text[i + 2] in " \t\r\n") or ch == "#":
            j = text.find("\n", i)
            j = n if j == -1 else j
            buf.append(text[start:i])
            if keep_comments:
                buf.append(text[i:j])
            i = start = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j == -1 else j + 2
            buf.append(text[start:i])
            if keep_comments:
                buf.append(text[i:j])
            i = start = j
            continue
        if ch == ";":
            buf.append(text[start:i])
            stmt = "".join(buf).strip()
            if stmt:
                out.append(stmt)
            buf, start = [], i + 1
        i += 1
    buf.append(text[start:])
    stmt = "".join(buf).strip()
    if stmt:
        out.append(stmt)
    return out


_VALUE = re.compile(r"\s*(?:(NULL)\b|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|'((?:[^'\\]|\\.|'')*)')", re.S)


def _unescape(s: str) -> str:
    s = s.replace("''", "'")
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), s, flags=re.S)


def parse_values(text: str) -> list[tuple]:
    """`(1,'a\\'b',NULL),(2,'c',3.5)` -> [(1, "a'b", None), (2, 'c', 3.5)]."""
    rows, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        if text[i] != "(":
            raise ValueError(f"expected '(' at {text[i:i + 30]!r}")
        i += 1
        row = []
        while True:
            m = _VALUE.match(text, i)
            if m is None:
                raise ValueError(f"cannot read a value at {text[i:i + 30]!r}")
            null, num, s = m.groups()
            if null:
                row.append(None)
            elif num is not None:
                row.append(int(num) if re.fullmatch(r"-?\d+", num) else float(num))
            else:
                row.append(_unescape(s))
            i = m.end()
            while i < n and text[i] in " \t\r\n":
                i += 1
            if text[i] == ",":
                i += 1
                continue
            if text[i] == ")":
                i += 1
                break
            raise ValueError(f"expected ',' or ')' at {text[i:i + 30]!r}")
        rows.append(tuple(row))
    return rows


_TEXT_TYPES = ("char", "text", "varchar", "tinytext", "mediumtext", "longtext", "enum", "set")
_COLUMN = re.compile(r"`([^`]+)`\s+(\w+(?:\s*\([^)]*\))?)(.*)", re.S)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _names(text: str) -> str:
    return ", ".join(_ident(x) for x in re.findall(r"`([^`]+)`", text))


def sqlite_create_table(stmt: str) -> tuple[str, str]:
    """A dump's `CREATE TABLE \\`t\\` (...) ENGINE=...` -> (table, the SQLite CREATE TABLE)."""
    m = re.match(r"CREATE TABLE `([^`]+)` \((.*)\)[^)]*$", stmt, re.S)
    if m is None:
        raise ValueError(f"not a dump CREATE TABLE: {stmt[:60]!r}")
    table, body = m.groups()
    parts = []
    for line in body.split("\n"):
        line = line.strip().rstrip(",")
        if not line:
            continue
        if line.startswith("`"):
            c = _COLUMN.match(line)
            name, typ, rest = c.groups()
            col = f"{_ident(name)} {typ.upper()}"
            if "NOT NULL" in rest.upper():
                col += " NOT NULL"
            if typ.split("(")[0].lower() in _TEXT_TYPES:
                col += " COLLATE NOCASE"
            parts.append(col)
        elif line.startswith("PRIMARY KEY"):
            parts.append(f"PRIMARY KEY ({_names(line)})")
        elif line.startswith("CONSTRAINT") and "FOREIGN KEY" in line:
            fk = re.search(r"FOREIGN KEY \(([^)]*)\) REFERENCES `([^`]+)` \(([^)]*)\)", line)
            parts.append(f"FOREIGN KEY ({_names(fk.group(1))}) REFERENCES {_ident(fk.group(2))} ({_names(fk.group(3))})")
        # plain KEY / UNIQUE KEY lines are indexes only: SQLite does without them
    return table, f"CREATE TABLE {_ident(table)} (\n  " + ",\n  ".join(parts) + "\n)"


def dump_databases(text: str) -> dict[str, list[tuple[str, str, list]]]:
    """The dump -> {database: [("create", table, sqlite_sql) | ("insert", table, rows), ...]} in dump order."""
    dbs, current = {}, None
    for stmt in statements(text):
        head = stmt[:40].upper()
        if head.startswith("CREATE DATABASE"):
            current = re.search(r"`([^`]+)`", stmt).group(1)
            dbs[current] = []
        elif head.startswith("CREATE TABLE"):
            table, sql = sqlite_create_table(stmt)
            dbs[current].append(("create", table, sql))
        elif head.startswith("INSERT INTO"):
            m = re.match(r"INSERT INTO `([^`]+)` VALUES\s*(.*)$", stmt, re.S)
            dbs[current].append(("insert", m.group(1), parse_values(m.group(2))))
    return dbs


def build_sqlite(dump_path=DEFAULT_DUMP, cache_dir=None) -> Path:
    """The directory of `<db>.sqlite` files built from `dump_path` (built only when missing; a
    concurrent builder loses the race harmlessly). Key: sha256 of the dump + CONVERTER_VERSION."""
    data = Path(dump_path).read_bytes()
    key = f"{hashlib.sha256(data).hexdigest()[:16]}-v{CONVERTER_VERSION}"
    out = Path(cache_dir) if cache_dir else cache_root() / "intercode_sql" / key
    if (out / "DONE").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        for db, ops in dump_databases(data.decode("utf-8")).items():
            conn = sqlite3.connect(tmp / f"{db}.sqlite", isolation_level=None)
            conn.execute("BEGIN")
            for kind, table, arg in ops:
                if kind == "create":
                    conn.execute(arg)
                elif arg:
                    marks = ", ".join("?" * len(arg[0]))
                    conn.executemany(f"INSERT INTO {_ident(table)} VALUES ({marks})", arg)
            conn.execute("COMMIT")
            conn.close()
        (tmp / "DONE").write_text(key + "\n")
        try:
            os.rename(tmp, out)
        except OSError:           # another process finished first: theirs is identical
            if not (out / "DONE").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
