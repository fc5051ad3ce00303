"""deploy/local.sh, the set-up behind `bash .ci/run` and `bash deploy/demo.sh`, on machines it cannot be tried on here.

The servers of this machine cannot be uninstalled, so each test runs one of the script's functions under bash with a
PATH of stand-ins: a fake apt-get that "installs" a package by putting its fake programs on that PATH, fake
PostgreSQL cluster tools that keep their clusters in a state folder, a fake sudo. Every stand-in writes the command
it was given to a log, and the tests assert what the script tried, in order, and what it left behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_SH = ROOT / "deploy" / "local.sh"

# Real programs the script runs; everything else on PATH is a stand-in.
REAL_TOOLS = [
    "bash",
    "cat",
    "sha256sum",
    "cut",
    "awk",
    "sed",
    "seq",
    "sort",
    "tail",
    "basename",
    "dirname",
    "grep",
    "rm",
    "env",
    "mkdir",
    "touch",
    "cp",
    "chmod",
    "head",
]

LOG = 'printf "%s\\n" "$(basename "$0") $*" >>"$STATE/calls"\n'

STAND_INS = {
    "sudo": LOG + '[ "$1" = -n ] && shift\nexec "$@"\n',
    "id": '[ "$1" = -u ] && echo "${FAKE_UID:-0}"\n',
    "sleep": "",
    "apt-get": LOG
    + """case "$1" in
    update) touch "$STATE/apt-updated" ;;
    install)
        # Like a machine whose package lists were never fetched: nothing installs before an update.
        [ -e "$STATE/apt-updated" ] || exit 100
        for package in "$@"; do
            [ -d "$STATE/packages/$package" ] || continue
            cp "$STATE/packages/$package/"* "$BIN/"
            [ ! -x "$STATE/postinst/$package" ] || "$STATE/postinst/$package"
        done ;;
esac
""",
}

# The programs a package brings, once the fake apt-get has installed it.
PACKAGES = {
    "postgresql": {
        "pg_isready": '[ -e "$STATE/pg-running" ]\n',
        "pg_lsclusters": '[ ! -e "$STATE/clusters" ] || cat "$STATE/clusters"\n',
        "pg_ctlcluster": LOG + 'case "${*: -1}" in start|restart) touch "$STATE/pg-running" ;; esac\n',
        "pg_createcluster": LOG + '[ "$1" = --port ] && port=$2 && shift 2\n"$STATE/make-cluster" "$1" "$2" "$port"\n',
        # Logs in when the first rule of some cluster's pg_hba.conf trusts loopback (as a new cluster's does not).
        "psql": LOG
        + 'for conf in "$PG_ETC"/*/*/pg_hba.conf; do\n'
        + '    grep -v "^#" "$conf" 2>/dev/null | head -n 1 | grep -q "^host *all *all *127.0.0.1/32 *trust" && exit\n'
        + "done\n"
        + '[ -e "$STATE/psql-logs-in" ]\n',
    },
    "rabbitmq-server": {
        "rabbitmq-server": LOG + 'touch "$STATE/amqp-running"\n',
        "rabbitmq-diagnostics": LOG,
    },
}

# What Debian's pg_createcluster writes: peer on the socket, passwords over TCP.
DEBIAN_PG_HBA = """local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
"""

MAKE_CLUSTER = f"""mkdir -p "$PG_ETC/$1/$2"
cat >"$PG_ETC/$1/$2/pg_hba.conf" <<'HBA'
{DEBIAN_PG_HBA}HBA
echo "$1 $2 $3 down postgres /var/lib/postgresql/$1/$2 /var/log/postgresql/postgresql-$1-$2.log" >>"$STATE/clusters"
"""


@dataclass
class Machine:
    """A folder standing for a machine: bin/ is the whole PATH, state/ what the stand-ins remember."""

    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def state(self) -> Path:
        return self.path / "state"

    @property
    def pg_etc(self) -> Path:
        return self.path / "etc-postgresql"

    def script(self, folder: Path, name: str, body: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        target.write_text("#!/bin/bash\n" + body)
        target.chmod(0o755)

    def install(self, package: str) -> None:
        """The package is on the machine already (as if apt-get had installed it before)."""
        for name, body in PACKAGES[package].items():
            self.script(self.bin, name, body)

    def server_binaries(self, version: str) -> None:
        self.script(self.path / "usr-lib-postgresql" / version / "bin", "postgres", "")

    def cluster(self, version: str, name: str, port: int) -> None:
        subprocess.run([self.state / "make-cluster", version, name, str(port)], check=True, env=self.env())

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": str(self.bin),
            "STATE": str(self.state),
            "BIN": str(self.bin),
            "PG_ETC": str(self.pg_etc),
            "FAKE_PG_ETC": str(self.pg_etc),
            "HOME": str(self.path),
            "LC_ALL": "C",
            **extra,
        }

    def run(self, call: str, *, cwd: Path = ROOT, **extra: str) -> subprocess.CompletedProcess[str]:
        """Source deploy/local.sh under `set -euo pipefail` (as .ci/run does) and run `call`."""
        harness = (
            f"set -euo pipefail\nsource {LOCAL_SH}\n"
            # The fakes' places for Debian's folders, and the broker's TCP probe answered by the fake broker.
            'PG_ETC="$FAKE_PG_ETC"; PG_LIB="$STATE/../usr-lib-postgresql"\n'
            'amqp_up() { [ -e "$STATE/amqp-running" ]; }\n'
            f"{call}\n"
        )
        return subprocess.run(
            [self.bin / "bash", "-c", harness],
            cwd=cwd,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[str]:
        log = self.state / "calls"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    machine = Machine(tmp_path)
    machine.bin.mkdir()
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run these tests"
        (machine.bin / tool).symlink_to(found)
    (machine.bin / "python3").symlink_to(sys.executable)  # only asked for its version
    for name, body in STAND_INS.items():
        machine.script(machine.bin, name, body)
    machine.script(machine.state, "make-cluster", MAKE_CLUSTER)
    for package, programs in PACKAGES.items():
        for name, body in programs.items():
            machine.script(machine.state / "packages" / package, name, body)
    # Debian's postgresql package makes and starts cluster 'main' as it installs (where an init system lets it).
    machine.script(
        machine.state / "postinst",
        "postgresql",
        'mkdir -p "$STATE/../usr-lib-postgresql/15/bin"\n"$STATE/make-cluster" 15 main 5432\n'
        'touch "$STATE/pg-running"\n',
    )
    return machine


def hba(machine: Machine, cluster: str) -> str:
    return (machine.pg_etc / cluster / "pg_hba.conf").read_text()


def trusts_loopback_first(conf: str) -> bool:
    rules = [line.split() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    return rules[0] == ["host", "all", "all", "127.0.0.1/32", "trust"]


# PostgreSQL


def test_postgres_missing_is_installed_with_apt_its_new_cluster_trusts_loopback_and_is_restarted(
    machine: Machine,
) -> None:
    result = machine.run("ensure_postgres")

    assert result.returncode == 0, result.stderr
    assert machine.calls() == [
        # The first install fails on a machine whose package lists were never fetched: update once, try again.
        "apt-get install -y -q postgresql",
        "apt-get update -q",
        "apt-get install -y -q postgresql",
        "pg_ctlcluster --skip-systemctl-redirect 15 main restart",
        "psql -X -q -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc SELECT 1",
    ]
    conf = hba(machine, "15/main")
    assert trusts_loopback_first(conf)
    assert "host    all    all    ::1/128         trust" in conf
    assert conf.endswith(DEBIAN_PG_HBA), "the package's own rules stay, after ours"
    assert "127.0.0.1" in result.stdout and "without a password" in result.stdout


def test_without_root_every_install_and_server_command_goes_through_sudo_without_a_prompt(machine: Machine) -> None:
    result = machine.run("ensure_postgres; ensure_rabbitmq", FAKE_UID="1000")

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    through_sudo = [call.removeprefix("sudo -n ") for call in calls if call.startswith("sudo -n ")]
    assert not [call for call in calls if call.startswith("sudo") and not call.startswith("sudo -n ")]
    privileged = [call for call in calls if call.startswith(("apt-get", "pg_", "rabbitmq"))]
    assert privileged == [
        "apt-get install -y -q postgresql",
        "apt-get update -q",
        "apt-get install -y -q postgresql",
        "pg_ctlcluster --skip-systemctl-redirect 15 main restart",
        "apt-get install -y -q rabbitmq-server",  # the package lists are fresh by now
        "rabbitmq-server -detached",
        "rabbitmq-diagnostics -q check_port_connectivity",
    ]
    for call in privileged:
        assert call in through_sudo or f"env DEBIAN_FRONTEND=noninteractive {call}" in through_sudo, call
    assert any(call.startswith("sed -i 1i") for call in through_sudo), "pg_hba.conf is root's"


def test_installed_postgres_without_any_cluster_gets_one_of_ours_on_5432(machine: Machine) -> None:
    machine.install("postgresql")
    machine.server_binaries("13")
    machine.server_binaries("15")

    result = machine.run("ensure_postgres")

    assert result.returncode == 0, result.stderr
    assert machine.calls()[:2] == [
        "pg_createcluster --port 5432 15 main",
        "pg_ctlcluster --skip-systemctl-redirect 15 main start",
    ]
    assert not any(call.startswith("apt-get") for call in machine.calls())
    assert trusts_loopback_first(hba(machine, "15/main"))


def test_a_cluster_main_on_another_port_is_left_alone_and_ours_is_named_rcc(machine: Machine) -> None:
    machine.install("postgresql")
    machine.server_binaries("15")
    machine.cluster("15", "main", 5433)

    result = machine.run("ensure_postgres")

    assert result.returncode == 0, result.stderr
    assert "pg_createcluster --port 5432 15 rcc" in machine.calls()
    assert hba(machine, "15/main") == DEBIAN_PG_HBA
    assert trusts_loopback_first(hba(machine, "15/rcc"))


def test_an_existing_stopped_cluster_is_started_and_its_pg_hba_never_touched(machine: Machine) -> None:
    machine.install("postgresql")
    machine.server_binaries("15")
    machine.cluster("15", "main", 5432)
    (machine.state / "psql-logs-in").touch()  # someone else's set-up that already lets the tests in

    result = machine.run("ensure_postgres")

    assert result.returncode == 0, result.stderr
    assert machine.calls()[0] == "pg_ctlcluster --skip-systemctl-redirect 15 main start"
    assert not any(call.startswith(("apt-get", "pg_createcluster", "sed")) for call in machine.calls())
    assert hba(machine, "15/main") == DEBIAN_PG_HBA


def test_a_cluster_that_refuses_the_passwordless_login_is_reported_with_the_line_to_add(machine: Machine) -> None:
    machine.install("postgresql")
    machine.server_binaries("15")
    machine.cluster("15", "main", 5432)

    result = machine.run("ensure_postgres")

    assert result.returncode == 1
    assert "user postgres cannot log in to 127.0.0.1:5432 without a password" in result.stderr
    assert "host all all 127.0.0.1/32 trust" in result.stderr
    assert hba(machine, "15/main") == DEBIAN_PG_HBA, "not our cluster: we say what to change, we do not change it"


def test_a_running_postgres_is_only_checked(machine: Machine) -> None:
    machine.install("postgresql")
    (machine.state / "pg-running").touch()
    (machine.state / "psql-logs-in").touch()

    result = machine.run("ensure_postgres")

    assert result.returncode == 0, result.stderr
    assert machine.calls() == ["psql -X -q -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc SELECT 1"]


def test_without_apt_the_error_says_what_to_install_or_which_containers_to_run(machine: Machine) -> None:
    (machine.bin / "apt-get").unlink()

    result = machine.run("ensure_postgres")

    assert result.returncode == 1
    assert machine.calls() == []
    message = " ".join(result.stderr.split())
    assert "no apt-get" in message
    assert "install PostgreSQL 15 or newer (server and psql)" in message
    assert "host all all 127.0.0.1/32 trust" in message
    assert "docker run -d -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15" in message
    assert "docker run -d -p 127.0.0.1:5672:5672 rabbitmq:3" in message


def test_when_apt_cannot_install_the_error_says_to_install_once_with_sudo(machine: Machine) -> None:
    machine.script(machine.bin, "apt-get", LOG + "exit 100\n")

    result = machine.run("ensure_postgres", FAKE_UID="1000")

    assert result.returncode == 1
    assert "run 'sudo apt-get install postgresql rabbitmq-server' once" in result.stderr
    assert [call for call in machine.calls() if call.startswith("apt-get")] == [
        "apt-get install -y -q postgresql",
        "apt-get update -q",
    ]


# RabbitMQ


def test_rabbitmq_missing_is_installed_with_apt_then_started(machine: Machine) -> None:
    result = machine.run("ensure_rabbitmq")

    assert result.returncode == 0, result.stderr
    assert machine.calls() == [
        "apt-get install -y -q rabbitmq-server",
        "apt-get update -q",
        "apt-get install -y -q rabbitmq-server",
        "rabbitmq-server -detached",
        "rabbitmq-diagnostics -q check_port_connectivity",
    ]


def test_an_installed_rabbitmq_is_started_without_apt(machine: Machine) -> None:
    machine.install("rabbitmq-server")

    result = machine.run("ensure_rabbitmq")

    assert result.returncode == 0, result.stderr
    assert machine.calls()[0] == "rabbitmq-server -detached"
    assert not any(call.startswith("apt-get") for call in machine.calls())


def test_rabbitmq_without_apt_says_what_to_install(machine: Machine) -> None:
    (machine.bin / "apt-get").unlink()

    result = machine.run("ensure_rabbitmq")

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "install RabbitMQ 3.10 or newer" in message
    assert "docker run -d -p 127.0.0.1:5672:5672 rabbitmq:3" in message


# The virtual environment


@pytest.fixture
def project(tmp_path: Path, machine: Machine) -> Path:
    """A copy of the project's install inputs, and a .venv whose python only logs what it is asked to do."""
    project = tmp_path / "project"
    (project / "requirements").mkdir(parents=True)
    for lock in ("app.lock.txt", "test.lock.txt"):
        shutil.copy(ROOT / "requirements" / lock, project / "requirements" / lock)
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    machine.script(project / ".venv" / "bin", "python", LOG)
    return project


def pip_calls(machine: Machine) -> list[str]:
    return [call for call in machine.calls() if call.startswith("python")]


def test_the_venv_is_installed_from_the_lock_with_hashes_then_the_project_without_dependencies(
    machine: Machine, project: Path
) -> None:
    result = machine.run("ensure_venv test", cwd=project)

    assert result.returncode == 0, result.stderr
    assert pip_calls(machine) == [
        "python -m pip install -q --require-hashes -r requirements/test.lock.txt",
        "python -m pip install -q --no-deps -e .",
    ]


def run_counting_installs(machine: Machine, project: Path) -> Callable[[str], int]:
    def run(call: str) -> int:
        before = len(pip_calls(machine))
        result = machine.run(call, cwd=project)
        assert result.returncode == 0, result.stderr
        return len(pip_calls(machine)) - before

    return run


def test_an_unchanged_lock_installs_nothing_again_and_a_changed_one_reinstalls(machine: Machine, project: Path) -> None:
    installs = run_counting_installs(machine, project)

    assert installs("ensure_venv test") == 2
    assert installs("ensure_venv test") == 0
    assert installs("ensure_venv app") == 0, "the test set holds the app set's pins: the demo needs nothing more"

    with (project / "requirements" / "test.lock.txt").open("a") as lock:
        lock.write("# regenerated\n")
    assert installs("ensure_venv test") == 2
    with (project / "pyproject.toml").open("a") as pyproject:
        pyproject.write("# a new entry point, say\n")
    assert installs("ensure_venv test") == 2
    assert installs("ensure_venv test") == 0


def test_an_app_install_does_not_pass_for_the_test_set(machine: Machine, project: Path) -> None:
    installs = run_counting_installs(machine, project)

    assert installs("ensure_venv app") == 2
    assert installs("ensure_venv app") == 0
    assert installs("ensure_venv test") == 2


def test_a_failed_install_is_tried_again_next_time(machine: Machine, project: Path) -> None:
    machine.script(project / ".venv" / "bin", "python", LOG + "exit 1\n")
    assert machine.run("ensure_venv test", cwd=project).returncode == 1

    machine.script(project / ".venv" / "bin", "python", LOG)
    installs = run_counting_installs(machine, project)
    assert installs("ensure_venv test") == 2


# The lock files and the scripts themselves


def test_every_locked_requirement_is_pinned_with_a_hash() -> None:
    for lock in ("app", "test"):
        text = (ROOT / "requirements" / f"{lock}.lock.txt").read_text()
        assert text.splitlines()[1] == "#    bash requirements/lock.sh", "the command that regenerates it"
        requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        assert requirements, lock
        for requirement in requirements:
            assert "==" in requirement and requirement.endswith("\\"), requirement


def test_the_test_lock_holds_the_app_locks_pins() -> None:
    def pins(lock: str) -> dict[str, str]:
        lines = (ROOT / "requirements" / f"{lock}.lock.txt").read_text().splitlines()
        return dict(line.split(" ")[0].split("==") for line in lines if line and not line.startswith((" ", "#")))

    app, test = pins("app"), pins("test")
    assert {name: test.get(name) for name in app} == app


def test_the_dockerfile_installs_the_app_lock_with_hashes() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "COPY requirements/app.lock.txt" in dockerfile
    assert "--require-hashes -r requirements/app.lock.txt" in dockerfile
    # The dependencies' layer comes before the code, so a code change does not reinstall them.
    assert dockerfile.index("--require-hashes") < dockerfile.index("COPY . ")


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="no shellcheck (apt-get install shellcheck)")
def test_the_scripts_pass_shellcheck() -> None:
    scripts = ["deploy/local.sh", "deploy/demo.sh", ".ci/run", "requirements/lock.sh"]
    result = subprocess.run(["shellcheck", "-x", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_the_stamp_names_what_the_venv_was_installed_from(machine: Machine, project: Path) -> None:
    assert machine.run("ensure_venv test", cwd=project).returncode == 0

    def digest(*files: str) -> str:
        return hashlib.sha256(b"".join((project / name).read_bytes() for name in files)).hexdigest()

    stamp = (project / ".venv" / ".rcc-installed").read_text().splitlines()
    assert stamp == [
        "test " + digest("requirements/app.lock.txt", "requirements/test.lock.txt", "pyproject.toml"),
        "app " + digest("requirements/app.lock.txt", "requirements/app.lock.txt", "pyproject.toml"),
    ]


# The image's health check


async def test_the_image_health_check_passes_while_a_service_answers_healthz_and_fails_after() -> None:
    from aiohttp import web

    from shared.web import healthz

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    # Every other service's port points at one where nothing listens: this container serves only the gatherings.
    unused = {f"RCC_{name}_PORT": "1" for name in ("PAGES", "CHECKIN", "VOLUNTEERING", "AUDIT", "NOTIFY")}

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "deploy" / "healthcheck.py"),
            env={**unused, "RCC_GATHERINGS_PORT": str(port), "PATH": os.environ["PATH"]},
        )
        return await process.wait()

    try:
        assert await check() == 0
    finally:
        await runner.cleanup()
    assert await check() == 1
