"""A local PostgreSQL server from Debian's `postgresql` package, for Dagster's instance storage.

`./dev` installs the package; `electricity-stack --postgres` and the Postgres tests start a server
of their own with `initdb` + `pg_ctl` in a folder of theirs, on loopback. PostgreSQL refuses to
run as root, so as root the server runs as the `postgres` system user the package creates.
Authentication is `trust` on 127.0.0.1 only: a throwaway local server. A real deployment points
DAGSTER_POSTGRES_URL at its own server (the password stays in that variable).
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DATABASE = "dagster"
USER = "dagster"
# dagster.yaml's storage block for Postgres: the URL (password included) stays in the variable.
POSTGRES_STORAGE = {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}


def write_instance_yaml(dagster_home: Path, postgres: bool) -> Path:
    """DAGSTER_HOME/dagster.yaml: the repo's dagster.yaml, its storage switched to Postgres
    (DAGSTER_POSTGRES_URL) when `postgres`; every other setting (run queue, retention) kept."""
    import yaml

    from electricity_assets.settings import PROJECT_ROOT

    source = PROJECT_ROOT / "dagster.yaml"
    target = dagster_home / "dagster.yaml"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not postgres:
        shutil.copy(source, target)
        return target
    config = yaml.safe_load(source.read_text())
    config["storage"] = POSTGRES_STORAGE
    target.write_text("# Written by electricity-stack from the repo's dagster.yaml: Postgres "
                      "storage (DAGSTER_POSTGRES_URL).\n" + yaml.safe_dump(config, sort_keys=False))
    return target


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries, or the server did not start; the message says what to do."""


def bin_dir() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parent.parent.name))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable("PostgreSQL is not installed: run `./dev setup` (installs Debian's "
                              "postgresql package) or `apt-get install postgresql`")


def _as_server_user(command: list[str]) -> list[str]:
    """Root cannot run PostgreSQL: run as the package's `postgres` user instead."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        # The driver named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, while
        # dagster-postgres ships psycopg2.
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        program = shutil.which(args[0], path=str(bin_dir())) or args[0]
        return subprocess.run(_as_server_user([program, *args[1:]]),
                              capture_output=True, text=True, check=False,
                              cwd="/")  # the server user may not read the caller's cwd

    def _ensure_cluster(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        if os.geteuid() == 0 and self._run("test", "-w", str(self.data_dir)).returncode:
            raise PostgresUnavailable(
                f"as root, PostgreSQL runs as user postgres, which cannot reach {self.data_dir}: "
                "use a folder whose parents others may traverse (chmod o+x), e.g. under /tmp")
        if (self.data_dir / "PG_VERSION").exists():
            return
        done = self._run("initdb", "-D", str(self.data_dir), "-U", USER, "--auth=trust",
                         "-E", "UTF8", "--no-instructions")
        if done.returncode:
            raise PostgresUnavailable(f"initdb {self.data_dir} failed: {done.stderr.strip()}")

    def start(self, timeout_s: float = 30.0) -> LocalPostgres:
        self._ensure_cluster()
        log = str(self.log_path or self.data_dir / "server.log")
        if self.log_path is not None and os.geteuid() == 0:
            self.log_path.touch()
            owner = pwd.getpwnam("postgres")
            os.chown(self.log_path, owner.pw_uid, owner.pw_gid)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=on"
        done = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", log, "-w",
                         "-t", str(int(timeout_s)), "-o", options)
        if done.returncode:
            raise PostgresUnavailable(f"PostgreSQL did not start on port {self.port} "
                                      f"(log: {log}): {done.stderr.strip() or done.stdout.strip()}")
        try:
            self.create_database()
        except BaseException:
            self.stop()
            raise
        logger.info("PostgreSQL %s running in %s", self.url, self.data_dir)
        return self

    def create_database(self, name: str = DATABASE) -> str:
        """Create database `name` unless it exists; returns its URL."""
        import psycopg2

        deadline = time.monotonic() + 10
        while True:
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER,
                                        dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction block
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url_for(name)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
