"""Run a command beside a throwaway PostgreSQL server, when PostgreSQL is installed.

    python scripts/with_postgres.py -- pytest ...

Starts ``initdb`` + ``pg_ctl`` in a temporary folder (as the ``postgres`` user when run as
root, since initdb refuses root) on a free loopback port, exports
``FEEDBACKLOOP_TEST_PG_URL`` to the command, and removes everything afterwards. Without
PostgreSQL the command runs alone (the PostgreSQL tests then skip, except under CI=true,
where they fail).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: with_postgres.py -- COMMAND ...", file=sys.stderr)
        return 2
    bindir = _bindir()
    if bindir is None:
        print("with_postgres: PostgreSQL is not installed; running without it", file=sys.stderr)
        return subprocess.call(argv)
    as_root = os.geteuid() == 0
    runner: list[str] = []
    tmp = tempfile.mkdtemp(prefix="fl-pg-")
    if as_root:
        pw = pwd.getpwnam("postgres")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        runner = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(tmp, "data")
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run([*runner, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync"], check=True, stdout=subprocess.DEVNULL, env=env)
    opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -k {tmp} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run([*runner, f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l",
                    os.path.join(tmp, "log"), "-w", "start"], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    print(f"with_postgres: PostgreSQL from {bindir} on 127.0.0.1:{port}", file=sys.stderr)
    try:
        return subprocess.call(argv, env={**os.environ, "FEEDBACKLOOP_TEST_PG_URL": url})
    finally:
        subprocess.run([*runner, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
