"""How many InterCode-SQL gold queries run on each backend, and how many give the same rows on both.

    python scripts/sql_backends.py [--db mysql://lumos:lumos@127.0.0.1:3307] [--show 5] [--out diff.jsonl]

Rows are compared after normalising what the drivers return differently (Decimal and int vs float,
datetime vs text): numbers to 4 decimals, dates as 'YYYY-MM-DD HH:MM:SS'. "Same order" means equal lists,
"same rows" equal multisets.
"""
import argparse
import collections
import datetime
import decimal
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lumos.agent.tasks import load_task  # noqa: E402
from lumos.envs.sql import SQLError, open_database  # noqa: E402


def normalise(value):
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return round(float(value), 4)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="mysql://lumos:lumos@127.0.0.1:3307", help="the server to compare SQLite with")
    ap.add_argument("--show", type=int, default=5, help="differences printed (default 5)")
    ap.add_argument("--out", type=Path, default=None, help="write every difference here (jsonl)")
    args = ap.parse_args(argv)
    from tqdm import tqdm
    dbs, counts, diffs = {}, collections.Counter(), []
    for ex in tqdm(load_task("intercode_sql"), desc="gold", unit="query", file=sys.stderr):
        got = {}
        for backend in ("sqlite", args.db):
            key = (ex.meta["db"], backend)
            try:
                if key not in dbs:
                    dbs[key] = open_database(ex.meta["db"], backend)
                got[backend] = [tuple(map(normalise, r)) for r in dbs[key].execute(ex.answer).rows]
            except SQLError as err:
                if "cannot connect" in str(err):
                    print(f"error: {err}", file=sys.stderr)
                    return 2
                got[backend] = f"error: {err}"
        lite, server = got["sqlite"], got[args.db]
        counts["sqlite runs"] += not isinstance(lite, str)
        counts["server runs"] += not isinstance(server, str)
        if isinstance(lite, str) or isinstance(server, str):
            continue
        if lite == server:
            counts["same rows, same order"] += 1
        elif collections.Counter(map(repr, lite)) == collections.Counter(map(repr, server)):
            counts["same rows, other order"] += 1
        else:
            counts["different rows"] += 1
            diffs.append({"id": ex.id, "gold": ex.answer, "sqlite": repr(lite)[:300], "server": repr(server)[:300]})
    for db in dbs.values():
        db.close()
    n = len(load_task("intercode_sql"))
    print(f"{n} gold queries: SQLite runs {counts['sqlite runs']}, {args.db} runs {counts['server runs']}; of those "
          f"both run: same rows in the same order {counts['same rows, same order']}, in another order "
          f"{counts['same rows, other order']}, different rows {counts['different rows']}")
    for d in diffs[:args.show]:
        print(f"  {d['id']}: {d['gold']}\n    sqlite {d['sqlite'][:120]}\n    server {d['server'][:120]}")
    if args.out:
        args.out.write_text("".join(json.dumps(d) + "\n" for d in diffs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
