"""lumos/envs/sqldump.py and lumos/envs/sql.py: the SQLite build from the InterCode dump, and the
read-only databases (guard, authorizer, time limit, row cap, MySQL-like string comparison)."""
import hashlib
import sqlite3
import time

import pytest

from lumos.envs import sqldump
from lumos.envs.sql import SQLError, check_statement, normalise_type, open_database


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return sqldump.build_sqlite(cache_dir=tmp_path_factory.mktemp("sqlite") / "dbs")


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.sqlite"))}


def test_statements_respect_quotes_and_comments():
    text = "-- a comment; not a statement\nINSERT INTO `t` VALUES ('a;b','c\\'d');/*!40101 SET x=1 */;\n# x;\nSELECT 1"
    assert sqldump.statements(text) == ["INSERT INTO `t` VALUES ('a;b','c\\'d')", "SELECT 1"]
    assert sqldump.statements("/*!80016 X */ CREATE DATABASE a;", keep_comments=True) == ["/*!80016 X */ CREATE DATABASE a"]


def test_parse_values_decodes_mysql_escapes():
    rows = sqldump.parse_values("(1,'It\\'s','a\\nb',NULL,-2.5,'x''y'),(2,'\\\\',' ',0,1e3,'')")
    assert rows == [(1, "It's", "a\nb", None, -2.5, "x'y"), (2, "\\", " ", 0, 1000.0, "")]


def test_create_table_conversion():
    table, sql = sqldump.sqlite_create_table(
        "CREATE TABLE `visit` (\n  `Museum_ID` int NOT NULL,\n  `Name` text COLLATE utf8mb4_general_ci,\n"
        "  `Total` float(10,2) DEFAULT NULL,\n  PRIMARY KEY (`Museum_ID`),\n  KEY `k` (`Name`),\n"
        "  CONSTRAINT `fk` FOREIGN KEY (`Museum_ID`) REFERENCES `museum` (`Museum_ID`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    assert table == "visit"
    assert sql == ('CREATE TABLE "visit" (\n  "Museum_ID" INT NOT NULL,\n  "Name" TEXT COLLATE NOCASE,\n'
                   '  "Total" FLOAT(10,2),\n  PRIMARY KEY ("Museum_ID"),\n'
                   '  FOREIGN KEY ("Museum_ID") REFERENCES "museum" ("Museum_ID")\n)')


def test_build_is_complete_and_deterministic(built, tmp_path):
    again = sqldump.build_sqlite(cache_dir=tmp_path / "again")
    assert digest(built) == digest(again) and len(digest(built)) == 20
    assert sqldump.build_sqlite(cache_dir=built) == built                 # cached: not rebuilt
    con = sqlite3.connect(built / "world_1.sqlite")
    assert con.execute("SELECT count(*) FROM city").fetchone() == (4079,)
    assert con.execute("SELECT Name, Population FROM city WHERE ID = 1").fetchone() == ("Kabul", 1780000)
    con.close()
    dump = sqldump.DEFAULT_DUMP.read_text(encoding="utf-8")
    n_rows = sum(len(a) for ops in sqldump.dump_databases(dump).values() for k, _, a in ops if k == "insert")
    total = 0
    for f in built.glob("*.sqlite"):
        con = sqlite3.connect(f)
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            total += con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        con.close()
    assert total == n_rows == 6952


def test_tables_describe_and_mysql_like_comparison(built):
    db = open_database("flight_2", f"sqlite://{built}")
    assert db.tables() == ["airlines", "airports", "flights"]
    assert db.describe("AIRPORTS")[:2] == [("City", "TEXT"), ("AirportCode", "VARCHAR(255)")]
    with pytest.raises(SQLError, match="doesn't exist"):
        db.describe("nope")
    # the dump stores 'Aberdeen ' with a trailing space; MySQL's _ci collation ignores it and the case
    rows = db.execute('SELECT AirportName FROM AIRPORTS WHERE City = "aberdeen" ORDER BY AirportName').rows
    assert rows == [("Municipal ",), ("Phillips AAF ",)]
    db.close()
    assert normalise_type("int(11)") == "INT" and normalise_type("varchar(255)") == "VARCHAR(255)"


@pytest.mark.parametrize("sql, message", [
    ("DROP TABLE city", "DROP statements are not allowed"),
    ("INSERT INTO city VALUES (1)", "INSERT statements"),
    ("UPDATE city SET Name = 'x'", "UPDATE statements"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH statements"),
    ("PRAGMA writable_schema = 1", "PRAGMA statements"),
    ("SELECT 1; DROP TABLE city", "one statement per action"),
    ("SELECT * FROM city INTO OUTFILE '/tmp/x'", "INTO is not allowed"),
    ("SELECT load_file('/etc/passwd')", "LOAD_FILE is not allowed"),
    ("SELECT * FROM city FOR UPDATE", "FOR UPDATE is not allowed"),
    ("SELECT 'abc", "unterminated string"),
    ("SELECT '\udcff'", "not valid UTF-8"),
    ("", "empty statement"),
])
def test_guard_refuses(sql, message):
    with pytest.raises(SQLError, match=message):
        check_statement(sql)


def test_guard_passes_reads():
    assert check_statement("  SELECT 'a;b' FROM t ;  ") == "SELECT 'a;b' FROM t"
    assert check_statement("(SELECT 1) UNION (SELECT 2)") == "(SELECT 1) UNION (SELECT 2)"
    assert check_statement("WITH x AS (SELECT 1) SELECT * FROM x") == "WITH x AS (SELECT 1) SELECT * FROM x"


def test_engine_refuses_writes_without_the_guard(built):
    """Bypass check_statement: SQLite itself (mode=ro + authorizer) refuses, and the file is unchanged."""
    before = digest(built)
    db = open_database("world_1", f"sqlite://{built}")
    for sql in ["DELETE FROM city", "DROP TABLE city", "CREATE TABLE t (a)", "PRAGMA writable_schema = 1",
                "ATTACH DATABASE ':memory:' AS m", "INSERT INTO city (ID) VALUES (99999)"]:
        with pytest.raises(sqlite3.DatabaseError):
            db.conn.execute(sql)
    db.close()
    assert digest(built) == before


def test_time_limit_and_row_cap(built):
    db = open_database("world_1", f"sqlite://{built}", time_limit=0.3, max_rows=10)
    t0 = time.monotonic()
    with pytest.raises(SQLError, match="time limit"):
        db.execute("SELECT count(*) FROM city a, city b, city c")
    assert time.monotonic() - t0 < 1.0
    res = db.execute("SELECT ID FROM city ORDER BY ID")
    assert res.rows == [(i,) for i in range(1, 11)] and res.truncated and res.columns == ["ID"]
    assert db.execute("SELECT ID FROM city WHERE ID < 3").truncated is False
    with pytest.raises(SQLError, match="too big|time limit"):
        db.execute("SELECT length(zeroblob(2000000000))")
    with pytest.raises(SQLError, match="no such table"):
        db.execute("SELECT * FROM nosuchtable")
    db.close()


def test_unknown_backend():
    with pytest.raises(SQLError, match="unknown database URL"):
        open_database("world_1", "postgres://x")
