"""A private MariaDB server holding the InterCode-SQL databases, as InterCode serves them (it uses MySQL 8).

    python -m lumos.envs.mariadb start     # init (once) + start + load the dump (once); prints the --db URL
    python -m lumos.envs.mariadb status
    python -m lumos.envs.mariadb stop

Everything lives in its own data directory ($LUMOS_CACHE/mariadb, default ~/.cache/lumos/mariadb): the
server listens on 127.0.0.1 only (default port 3307, InterCode's) and on its own socket there, and never
reads /etc/mysql (`--no-defaults`). It is initialised with `--lower-case-table-names=1`: Spider's gold
SQL writes `Cartoon` for table `cartoon`, and without it 169 gold queries fail on a case-sensitive
filesystem. The dump's test user (ALL PRIVILEGES from anywhere) is not loaded; MySQL-8-only options
(`/*!80016 DEFAULT ENCRYPTION='N' */`, executed by MariaDB since its version number is larger) are
removed. The agent connects as `lumos`/`lumos`, a user with SELECT (which covers SHOW TABLES and
DESCRIBE) on the 20 databases only, and a per-user statement time limit. Administration goes through
the `mariadb` client over the socket as the OS user (unix_socket authentication): no admin password exists.
"""
import argparse
import getpass
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from lumos.envs import cache_root
from lumos.envs.sqldump import DEFAULT_DUMP

USER, PASSWORD, PORT = "lumos", "lumos", 3307
MAX_STATEMENT_TIME = 30   # seconds, per statement of the `lumos` user (the client sets a tighter one)


def datadir_default() -> Path:
    return cache_root() / "mariadb"


def _binary(*names: str) -> str:
    for n in names:
        path = shutil.which(n) or (f"/usr/sbin/{n}" if os.path.exists(f"/usr/sbin/{n}") else None)
        if path:
            return path
    raise SystemExit(f"cannot find {' or '.join(names)}: install MariaDB (Debian/Ubuntu: apt-get install mariadb-server)")


def url(port: int = PORT) -> str:
    return f"mysql://{USER}:{PASSWORD}@127.0.0.1:{port}"


def clean_dump(text: str) -> str:
    """The InterCode dump as MariaDB should load it: without its test user, without MySQL-8-only options."""
    text = re.sub(r"^CREATE USER .*?;\s*$|^GRANT .*?;\s*$|^FLUSH PRIVILEGES;\s*$", "", text, flags=re.M)
    return re.sub(r"/\*!80016 DEFAULT ENCRYPTION='N' \*/", "", text)


def admin_sql(datadir: Path, sql: str, timeout: float = 120) -> str:
    """Run `sql` through the mariadb client over the server's socket as root (unix_socket auth); stdout."""
    cmd = [_binary("mariadb", "mysql"), "--no-defaults", f"--socket={datadir / 'mysqld.sock'}", "-u", "root",
           "--batch", "--skip-column-names"]
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"mariadb client failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return r.stdout


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid(datadir: Path) -> int | None:
    try:
        pid = int((datadir / "mysqld.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(datadir: Path | None = None, port: int = PORT, dump=DEFAULT_DUMP, quiet: bool = False) -> str:
    """Initialise (first time), start (when not running) and load (when the dump changed); -> the --db URL."""
    datadir = Path(datadir or datadir_default()).resolve()
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    me = getpass.getuser()
    if not (datadir / "mysql").is_dir():
        datadir.mkdir(parents=True, exist_ok=True)
        say(f"initialising {datadir} (--lower-case-table-names=1) ...")
        r = subprocess.run([_binary("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={datadir}",
                            f"--user={me}", "--lower-case-table-names=1", "--skip-test-db",
                            "--auth-root-authentication-method=socket", f"--auth-root-socket-user={me}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"mariadb-install-db failed: {r.stderr.strip()[-500:]}")
    if _pid(datadir) is None:
        if _port_open(port):
            raise SystemExit(f"port {port} is taken by another server: pass --port")
        (datadir / "no-files").mkdir(exist_ok=True)
        cmd = [_binary("mariadbd", "mysqld"), "--no-defaults", f"--datadir={datadir}", f"--user={me}",
               f"--socket={datadir / 'mysqld.sock'}", f"--pid-file={datadir / 'mysqld.pid'}", f"--port={port}",
               "--bind-address=127.0.0.1", "--lower-case-table-names=1", f"--log-error={datadir / 'error.log'}",
               "--skip-name-resolve", "--local-infile=0", f"--secure-file-priv={datadir / 'no-files'}",
               "--innodb-buffer-pool-size=64M", "--max-connections=200", "--skip-log-bin",
               # the data is a read-only copy of the dump, remade in seconds: no fsync per loaded row batch
               "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0"]
        say(f"starting mariadbd on 127.0.0.1:{port} (log: {datadir / 'error.log'}) ...")
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        for _ in range(300):
            if (datadir / "mysqld.sock").exists() and _port_open(port) and _pid(datadir):
                break
            time.sleep(0.1)
        else:
            tail = (datadir / "error.log").read_text(errors="replace")[-800:] if (datadir / "error.log").exists() else ""
            raise SystemExit(f"mariadbd did not come up within 30 s:\n{tail}")
    text = Path(dump).read_text(encoding="utf-8")
    key = hashlib.sha256(text.encode()).hexdigest()
    marker = datadir / "LOADED"
    if not marker.exists() or marker.read_text().strip() != key:
        t0 = time.time()
        admin_sql(datadir, clean_dump(text))
        dbs = re.findall(r"CREATE DATABASE\s+IF NOT EXISTS `([^`]+)`", text)
        grants = "".join(f"GRANT SELECT ON `{db}`.* TO '{USER}'@'{host}';\n" for db in dbs for host in ("127.0.0.1", "localhost"))
        admin_sql(datadir, "".join(
            f"DROP USER IF EXISTS '{USER}'@'{host}';\nCREATE USER '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}' "
            f"WITH MAX_STATEMENT_TIME {MAX_STATEMENT_TIME} MAX_USER_CONNECTIONS 100;\n" for host in ("127.0.0.1", "localhost"))
            + grants + "FLUSH PRIVILEGES;\n")
        marker.write_text(key + "\n")
        say(f"loaded {len(dbs)} databases in {time.time() - t0:.1f} s; user {USER} may only SELECT")
    return url(port)


def stop(datadir: Path | None = None, quiet: bool = False) -> bool:
    """Stop the server of `datadir` (SIGTERM, wait up to 30 s). -> whether one was running."""
    datadir = Path(datadir or datadir_default()).resolve()
    pid = _pid(datadir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        if _pid(datadir) is None:
            break
        time.sleep(0.1)
    if not quiet:
        print(f"stopped mariadbd (pid {pid})", file=sys.stderr)
    return True


def checksums(datadir: Path | None = None) -> dict[str, str]:
    """{"tables": how many, "digest": sha256 of every InterCode table's CHECKSUM TABLE EXTENDED, row
    count and SHOW CREATE TABLE}: equal before and after means the data and schema are unchanged."""
    datadir = Path(datadir or datadir_default()).resolve()
    dbs = re.findall(r"CREATE DATABASE\s+IF NOT EXISTS `([^`]+)`", DEFAULT_DUMP.read_text(encoding="utf-8"))
    listing = admin_sql(datadir, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ("
                        + ",".join(f"'{d.lower()}'" for d in dbs) + ") ORDER BY 1, 2;")
    names = [tuple(line.split("\t")) for line in listing.splitlines() if line]
    sql = "".join(f"CHECKSUM TABLE `{d}`.`{t}` EXTENDED; SELECT COUNT(*) FROM `{d}`.`{t}`; SHOW CREATE TABLE `{d}`.`{t}`;\n"
                  for d, t in names)
    out = admin_sql(datadir, sql).splitlines()
    digest = hashlib.sha256("\n".join(out).encode()).hexdigest()
    return {"tables": str(len(names)), "digest": digest}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("start", "stop", "status"))
    ap.add_argument("--datadir", type=Path, default=None, help=f"default: {datadir_default()}")
    ap.add_argument("--port", type=int, default=PORT, help=f"TCP port on 127.0.0.1 (default {PORT})")
    args = ap.parse_args(argv)
    if not 0 < args.port < 65536:
        ap.error("--port must be 1..65535")
    if args.command == "start":
        print(start(args.datadir, args.port))
    elif args.command == "stop":
        if not stop(args.datadir):
            print("no server running", file=sys.stderr)
    else:
        d = Path(args.datadir or datadir_default()).resolve()
        pid = _pid(d)
        print(f"running (pid {pid}), {url(args.port)}" if pid else f"not running ({d})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
