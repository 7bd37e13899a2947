"""A throwaway PostgreSQL cluster on loopback for the benchmarks, as ``scripts/test``
starts one for the suite: the newest /usr/lib/postgresql/*/bin, a cluster in a
temporary folder (owned by ``postgres`` when run as root: PostgreSQL refuses root),
durability off, removed on ``stop()``.

    with ThrowawayPostgres() as postgres:
        postgres.create_database("stremora")
        os.environ["DATABASE_URL"] = postgres.url("stremora")
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from tests.s3_server import free_port


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return found[-1]


class ThrowawayPostgres:
    def __init__(self):
        self.bin = postgres_bin()
        self.port = free_port()
        self.directory = None
        self._run_as = []

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command):
        subprocess.run([*self._run_as, *command], check=True, capture_output=True, text=True)

    def start(self):
        self.directory = tempfile.mkdtemp(prefix="stremora-bench-pg-")
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.directory, user)
            self._run_as = ["runuser", "-u", user, "--"]
        data = os.path.join(self.directory, "data")
        try:
            self._run(f"{self.bin}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            self._run(
                f"{self.bin}/pg_ctl", "-D", data, "-l", os.path.join(self.directory, "server.log"), "-w", "-t", "60",
                "start", "-o",
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            )
        except subprocess.CalledProcessError as error:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {error.stderr or error.stdout}") from None
        return self

    def create_database(self, name):
        self._run(f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def stop(self):
        if self.directory is None:
            return
        subprocess.run(
            [*self._run_as, f"{self.bin}/pg_ctl", "-D", os.path.join(self.directory, "data"), "-m", "immediate",
             "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
