"""Fuzz of the SQL action path (SQLExecutor.run -> lumos/tools/sql.py -> lumos/envs/sql.py): 10,000
generated and mutated actions (writes, ATTACH, PRAGMA, multi-statements, huge cross joins, endless
recursion, unterminated strings, non-UTF-8, NULs, giant inputs, mutated gold SQL) must leave every
database byte-identical (SQLite files; MariaDB: CHECKSUM TABLE + schema), raise nothing, and take no
longer than the per-statement time limit each."""
import hashlib
import os
import random
import time
from types import SimpleNamespace

import pytest

from lumos.agent.executor import SQLExecutor
from lumos.agent.tasks import load_task
from lumos.envs import mariadb
from lumos.envs.sqldump import build_sqlite

LIMIT = 0.25      # seconds per statement in the fuzz
SLACK = 0.75      # Python and scheduling around a statement on a busy 2-core machine
ATTACH_FILE = "/tmp/lumos_fuzz_attached.db"

HOSTILE = [
    "DROP TABLE {t}", "DELETE FROM {t}", "INSERT INTO {t} VALUES (1)", "UPDATE {t} SET {c} = NULL",
    "CREATE TABLE pwned (a)", "ALTER TABLE {t} ADD COLUMN z int", "TRUNCATE TABLE {t}", "REPLACE INTO {t} VALUES (1)",
    f"ATTACH DATABASE '{ATTACH_FILE}' AS x", "ATTACH ':memory:' AS m", "DETACH m", "PRAGMA writable_schema = 1",
    "PRAGMA journal_mode = WAL", "PRAGMA query_only = 0", "VACUUM", "VACUUM INTO '/tmp/lumos_fuzz_vacuum.db'", "REINDEX",
    "BEGIN IMMEDIATE", "COMMIT", "SAVEPOINT a", "SELECT 1; DROP TABLE {t}", "SELECT * FROM {t}; DELETE FROM {t}",
    "SELECT * FROM {t} INTO OUTFILE '/tmp/lumos_fuzz_out'", "SELECT load_file('/etc/passwd')",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE {t}", "SELECT * FROM {t} FOR UPDATE", "SET GLOBAL read_only = 0",
    "GRANT ALL ON *.* TO 'x'@'%'", "CREATE USER 'x'@'%'", "SHOW GRANTS", "SHOW DATABASES", "USE mysql",
    "SELECT * FROM mysql.user", "SELECT sqlite_version()", "SELECT * FROM sqlite_master", "CALL p()",
    "DESCRIBE ../../etc/passwd", "DESCRIBE {t}; DROP TABLE {t}", "SHOW TABLES; DROP TABLE {t}",
    "SELECT 'unterminated", 'SELECT "unterminated', "SELECT `unterminated", "SELECT /* unterminated",
    "SELECT '\udcff\udcfe'", "SELECT 'a\x00b'", "SELECT '\\'; DROP TABLE {t}; --'", "R1 = ", "R1 = ;;;", "= = =",
    "SELECT " + "(" * 3000 + "1" + ")" * 3000, "SELECT " + "1+" * 20000 + "1", "R1 = SELECT '" + "x" * 150_000 + "'",
    "SELECT length(zeroblob(2000000000))", "SELECT length(randomblob(2000000000))", "SELECT replace(hex(zeroblob(9000000)), '0', 'ab')",
    "SELECT sleep(10)", "SELECT benchmark(100000000000, md5('a'))", "SELECT pg_sleep(10)",
]
HEAVY = [
    "SELECT count(*) FROM {t} a, {t} b, {t} c, {t} d, {t} e",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT * FROM {t} a, {t} b, {t} c, {t} d ORDER BY random()",
    "SELECT sleep(10)",
]
KEYWORDS = ["DROP", "DELETE", "INSERT", "UPDATE", ";", "'", '"', "`", "(", ")", "--", "/*", "ATTACH", "PRAGMA",
            "INTO OUTFILE", "\x00", "\udcff", "é", "UNION SELECT", "; DROP TABLE city", " OR 1=1"]


def mutate(rng: random.Random, sql: str) -> str:
    """One random edit of a gold query: a character or a keyword inserted, deleted or swapped, a cut, a splice."""
    op, i = rng.randrange(6), rng.randrange(len(sql) + 1)
    if op == 0:
        return sql[:i] + rng.choice(KEYWORDS) + sql[i:]
    if op == 1:
        return sql[:i] + sql[i + rng.randint(1, 8):]
    if op == 2:
        return sql[:i]
    if op == 3:
        return sql.replace("SELECT", rng.choice(["DELETE", "UPDATE", "INSERT INTO", "SELECT"]), 1)
    if op == 4:
        return sql + rng.choice(["; DROP TABLE t", "; PRAGMA writable_schema=1", ";", " LIMIT 1; ATTACH ':memory:' AS m"])
    return sql[:i] + chr(rng.randrange(1, 0x2FFF)) + sql[i:]


def actions(n: int, seed: int = 0):
    """n fuzz actions -> (db, grounding) pairs; about 1 in 200 is a deliberately heavy statement."""
    rng = random.Random(seed)
    examples = load_task("intercode_sql")
    for k in range(n):
        ex = rng.choice(examples)
        t, c = "city", "Name"
        if ex.meta["db"] != "world_1":
            t = ex.meta["gold"]["actions"][1].split("DESCRIBE ")[1].split(";")[0].strip()
            c = "*"
        kind = rng.random()
        if kind < 0.005:
            text = rng.choice(HEAVY).format(t=t, c=c)
        elif kind < 0.35:
            text = rng.choice(HOSTILE).format(t=t, c=c)
        elif kind < 0.85:
            text = ex.answer
            for _ in range(rng.randint(1, 3)):
                text = mutate(rng, text)
        else:
            text = rng.choice([a for a in ex.meta["gold"]["actions"]])
        if rng.random() < 0.5 and not text.lstrip().startswith("R"):
            text = f"R{rng.randint(1, 9)} = {text}"
        yield ex, text


def run_fuzz(url: str, n: int):
    """-> (number of actions executed, max seconds of one call, number of refused/failed actions)."""
    executor, sessions = SQLExecutor(url, time_limit=LIMIT), {}
    n_actions = n_errors = 0
    worst = 0.0
    for ex, text in actions(n):
        env = sessions.get(ex.meta["db"])
        if env is None:
            env = sessions[ex.meta["db"]] = executor.start(SimpleNamespace(answer=ex.answer, meta=ex.meta))
        t0 = time.monotonic()
        records = executor.run(text, env)          # never raises: every failure is a record
        took = time.monotonic() - t0
        n_actions += len(records)
        n_errors += sum(r.error is not None for r in records)
        worst = max(worst, took / max(1, len(records)))
        assert took <= len(records) * LIMIT + SLACK, (text[:200], took)
    for env in sessions.values():
        outcome = executor.finish(env)
        assert -1.0 <= outcome["reward"] <= 1.0
    return n_actions, worst, n_errors


def file_digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_fuzz_10000_actions_on_sqlite():
    folder = build_sqlite()
    before = file_digest(folder)
    n_actions, worst, n_errors = run_fuzz("sqlite", 10_000)
    assert n_actions >= 10_000 and n_errors > 3_000
    assert file_digest(folder) == before                     # same files, same bytes, nothing added
    for leftover in (ATTACH_FILE, "/tmp/lumos_fuzz_vacuum.db", "/tmp/lumos_fuzz_out"):
        assert not os.path.exists(leftover)
    print(f"sqlite fuzz: {n_actions} actions, {n_errors} refused or failed, slowest {worst:.3f} s (limit {LIMIT} s)")


def test_fuzz_actions_on_mariadb():
    url = os.environ.get("LUMOS_MYSQL_URL", mariadb.url())
    datadir = mariadb.datadir_default()
    if not (datadir / "mysqld.sock").exists():
        pytest.skip(f"no MariaDB started by `python -m lumos.envs.mariadb start` in {datadir} (checksums need its socket)")
    before = mariadb.checksums(datadir)
    n = int(os.environ.get("LUMOS_SQL_FUZZ_N", "2000"))
    n_actions, worst, n_errors = run_fuzz(url, n)
    assert n_actions >= n and mariadb.checksums(datadir) == before
    print(f"mariadb fuzz: {n_actions} actions, {n_errors} refused or failed, slowest {worst:.3f} s (limit {LIMIT} s)")
