"""InterCode-SQL on a real MariaDB server (lumos/envs/mariadb.py, the mysql:// backend of lumos/envs/sql.py).

Needs the server `python -m lumos.envs.mariadb start` starts (.ci/run starts it); $LUMOS_MYSQL_URL points
elsewhere. Without a server these tests skip with one line.
"""
import os
import time

import pytest

from lumos.envs import mariadb
from lumos.envs.sql import SQLError, open_database

URL = os.environ.get("LUMOS_MYSQL_URL", mariadb.url())


def test_clean_dump_drops_the_test_user_and_mysql8_options():
    text = ("-- TEST USER\nCREATE USER 'admin'@'%' IDENTIFIED BY 'admin'; \nGRANT ALL PRIVILEGES ON *.* TO 'admin'@'%'; \n"
            "FLUSH PRIVILEGES;\n\nCREATE DATABASE  IF NOT EXISTS `a` /*!40100 DEFAULT CHARACTER SET utf8mb4 */ "
            "/*!80016 DEFAULT ENCRYPTION='N' */;\nUSE `a`;\n")
    out = mariadb.clean_dump(text)
    assert "CREATE USER" not in out and "GRANT" not in out and "FLUSH" not in out and "80016" not in out
    assert "CREATE DATABASE  IF NOT EXISTS `a` /*!40100 DEFAULT CHARACTER SET utf8mb4 */ ;" in out


@pytest.fixture(scope="module")
def server():
    try:
        db = open_database("world_1", URL)
    except SQLError as err:
        pytest.skip(f"no MariaDB at {URL} ({err}); start one: python -m lumos.envs.mariadb start")
    db.close()
    return URL


def test_tables_describe_and_case_insensitive_names(server):
    db = open_database("flight_2", server)
    assert db.tables() == ["airlines", "airports", "flights"]
    assert db.describe("AIRPORTS")[:2] == [("City", "TEXT"), ("AirportCode", "VARCHAR(255)")]
    # Spider writes AIRPORTS for airports: it runs only with --lower-case-table-names=1
    rows = db.execute('SELECT AirportName FROM AIRPORTS WHERE City = "aberdeen" ORDER BY AirportName').rows
    assert rows == [("Municipal ",), ("Phillips AAF ",)]
    with pytest.raises(SQLError, match="doesn't exist"):
        db.describe("nope")
    db.close()


def test_the_user_may_only_read(server):
    """Past our guard (the raw connection), the server itself refuses every write of the lumos user."""
    import pymysql
    db = open_database("world_1", server)
    for sql in ["DELETE FROM city", "DROP TABLE city", "CREATE TABLE t (a int)", "INSERT INTO city (ID) VALUES (99999)",
                "UPDATE city SET Name = 'x'", "SELECT 1 INTO OUTFILE '/tmp/lumos_x'", "GRANT SELECT ON *.* TO 'x'@'%'",
                "CREATE USER 'x'@'%'", "LOAD DATA INFILE '/etc/passwd' INTO TABLE city"]:
        with db.conn.cursor() as cur, pytest.raises(pymysql.MySQLError):
            cur.execute(sql)
    with pytest.raises(SQLError, match="DROP statements are not allowed"):
        db.execute("DROP TABLE city")
    assert db.execute("SELECT count(*) FROM city").rows == [(4079,)]
    db.close()


def test_time_limit_and_row_cap(server):
    db = open_database("world_1", server, time_limit=0.5, max_rows=10)
    t0 = time.monotonic()
    with pytest.raises(SQLError, match="time limit"):
        db.execute("SELECT count(*) FROM city a, city b, city c")
    assert time.monotonic() - t0 < 2.0
    res = db.execute("SELECT ID FROM city ORDER BY ID")       # a fresh connection after the interrupted one
    assert res.rows == [(i,) for i in range(1, 11)] and res.truncated
    assert db.execute("SELECT ID FROM city WHERE ID < 3").rows == [(1,), (2,)]
    db.close()


def test_gold_replay_and_corrupt_gold(server):
    from lumos.agent.agent import Agent
    from lumos.agent.backends import GoldBackend
    from lumos.agent.executor import SQLExecutor
    from lumos.agent.tasks import load_task
    every = load_task("intercode_sql")
    examples = every[:30] + [every[164], every[178]]            # 164, 178: gold that MariaDB cannot parse
    rows = {e.id: e.meta["gold"] for e in examples}
    agent = Agent(GoldBackend(rows, "planner", "iterative"), GoldBackend(rows, "grounder", "iterative"),
                  SQLExecutor(server), "sql", "iterative")
    eps = {ep.id: ep for ep in agent.run(examples, batch_size=8)}
    for e in examples[:30]:
        assert eps[e.id].outcome["reward"] == 1.0 and not eps[e.id].outcome["corrupt_gold"], e.id
    for i in (164, 178):
        ep = eps[f"intercode_sql-dev-{i}"]
        assert ep.outcome["corrupt_gold"] and ep.outcome["reward"] == 0.0 and ep.failure == "execution_error"


def test_unreachable_server_is_one_clear_line():
    with pytest.raises(SQLError, match="cannot connect to 127.0.0.1:1 as 'lumos'"):
        open_database("world_1", "mysql://lumos:lumos@127.0.0.1:1")
