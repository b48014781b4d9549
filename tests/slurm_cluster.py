"""A one-node Slurm cluster of this machine's CPUs, started and stopped by the tests (tests/test_slurm.py).

Debian's packages (slurmctld, slurmd, munge, slurm-client; .ci/run installs them) and root are all it
needs: munged, slurmctld and slurmd run in the foreground as children of the test session, from
tests/slurm/slurm.conf filled in with this host, its CPUs, two free ports and a state folder of its
own, so nothing global is touched (no /etc/slurm, no systemd) and two sessions on one machine run two
clusters side by side. Clients find it through SLURM_CONF; so do the jobs, which inherit it.

stop() leaves nothing running: it cancels every job, waits for the queue to empty, stops the daemons,
then kills (by pid) any process still carrying this cluster's SLURM_CONF in its environment: a
job step the daemons left behind, a command a failed test left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).parent / "slurm" / "slurm.conf"
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo")
PACKAGES = "slurmctld slurmd munge slurm-client"


def why_not() -> str | None:
    """Why no cluster can be started here, or None."""
    if os.geteuid() != 0:
        return "the one-node Slurm cluster runs its daemons as root, and this is not root"
    missing = [name for name in DAEMONS + CLIENTS if not _which(name)]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} missing): apt-get install {PACKAGES} (.ci/run does)"
    return None


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


@dataclass
class Cluster:
    folder: Path
    daemons: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> str:
        """A Slurm client command against this cluster; its stdout."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> "Cluster":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # munged wants its socket's folder searchable by all
        for sub in ("slurmctld", "slurmd"):
            (self.folder / sub).mkdir(exist_ok=True)
        self._write_config()
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self._daemon(_which("munged"), "--foreground", "--force", f"--key-file={key}",
                     f"--socket={self.folder / 'munge.socket'}", f"--pid-file={self.folder / 'munged.pid'}",
                     f"--log-file={self.folder / 'munged.log'}", f"--seed-file={self.folder / 'munged.seed'}")
        self._wait(lambda: (self.folder / "munge.socket").exists(), "munged to open its socket")
        self._daemon(_which("slurmctld"), "-D", "-f", str(self.conf))
        self._daemon(_which("slurmd"), "-D", "-f", str(self.conf))
        self._wait(lambda: self.run("sinfo", "--noheader", "--format=%t", check=False).split()[:1] == ["idle"],
                   "the node to be idle")
        return self

    def _write_config(self) -> None:
        ports = free_ports(2)
        text = string.Template(TEMPLATE.read_text()).substitute(
            name=f"test{ports[0]}", host=socket.gethostname(), cpus=os.cpu_count() or 1, state=self.folder,
            ctld_port=ports[0], slurmd_port=ports[1])
        self.conf.write_text(text)

    def _daemon(self, *command: str) -> None:
        log = open(self.folder / f"{Path(command[0]).name}.out", "ab")
        self.daemons.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True))
        log.close()

    def _wait(self, ready, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.daemons if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"Slurm test cluster: waited for {what} in vain ({', '.join(dead) or 'timeout'} "
                                   f"- see the logs in {self.folder})")
            time.sleep(0.2)

    def jobs(self, state: str = "") -> list[str]:
        """The jobs (array tasks one by one) the cluster lists as pending or running, or in `state`."""
        states = [f"--states={state}"] if state else []
        return self.run("squeue", "--noheader", "--array", "--format=%i", *states).split()

    def running(self) -> list[str]:
        return self.jobs("RUNNING")

    def cancel_all(self, timeout: float = 60.0) -> None:
        """Cancel every job and wait until none is left (a test's jobs must not hold the next one's CPUs)."""
        self.run("scancel", "--full", f"--user={os.getuid()}", check=False)
        deadline = time.monotonic() + timeout
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        if all(p.poll() is None for p in self.daemons):
            self.cancel_all()
        for process in reversed(self.daemons):  # slurmd, slurmctld, then munged, which they talk to
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid in self.processes():
            os.kill(pid, signal.SIGKILL)

    def processes(self, *marks: str, command: str = "") -> list[int]:
        """Processes started by this cluster or its clients, still running (they carry its SLURM_CONF),
        whose environment also holds `marks` and whose command line holds `command`."""
        wanted = {f"SLURM_CONF={self.conf}".encode(), *(mark.encode() for mark in marks)}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environment = set((entry / "environ").read_bytes().split(b"\0"))
                if wanted <= environment and command.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
