"""tests/integration/conftest.py — shared fixtures: real processes on loopback.

Every test gets its own ports (free_port), its own temp dirs, and a `procs` manager whose
teardown SIGKILLs whatever the test started (so a failing test never leaks a broker).
Programs come from bin/ (built by `make`; $THINKFAST_BIN overrides); a test needing a missing
program fails with a message saying which (a missing build is an error, not a skip).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ["THINKFAST_BIN"]) if os.environ.get("THINKFAST_BIN") else ROOT / "bin"  # override: e.g. sanitizer builds


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def need(*names):
    missing = [n for n in names if not (BIN / n).exists()]
    if missing:
        pytest.fail("not built: " + ", ".join("bin/" + m for m in missing) + " (run make first)")


class Procs:
    """Starts programs with logs in a temp dir; kills them all at teardown."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.all = []
        self.n = 0

    def start(self, args, name=None, env=None, **kw):
        self.n += 1
        name = name or Path(str(args[0])).name
        log = open(self.tmp / f"{self.n:02d}-{name}.log", "wb")
        e = dict(os.environ)
        e.setdefault("THINKFAST_LOG", "info")
        if env:
            e.update(env)
        p = subprocess.Popen([str(a) for a in args], stdout=log, stderr=subprocess.STDOUT, env=e, **kw)
        p.log_path = log.name
        p.name = name
        self.all.append(p)
        return p

    def log(self, p):
        try:
            return Path(p.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def dump(self):
        out = []
        for p in self.all:
            out.append(f"---- {p.name} (pid {p.pid}, rc {p.poll()}) ----\n" + self.log(p)[-4000:])
        return "\n".join(out)

    def stop(self, p, timeout=5.0):
        """SIGTERM and wait; SIGKILL if it does not exit. Returns the exit status."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def kill_all(self):
        for p in self.all:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self.all:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs(tmp_path, request):
    pr = Procs(tmp_path)
    yield pr
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write(pr.dump())
    pr.kill_all()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    """A broker on fresh loopback ports plus workers, driven through bin/jobctl."""

    def __init__(self, procs, tmp, db=None, hb_ms=None):
        self.procs = procs
        self.tmp = Path(tmp)
        self.db = Path(db) if db else self.tmp / "db"
        self.cport, self.wport = free_port(), free_port()
        self.clients = f"tcp://127.0.0.1:{self.cport}"
        self.workers_ep = f"tcp://127.0.0.1:{self.wport}"
        self.broker = None
        self.workers = []

    def start_broker(self, extra=()):
        self.broker = self.procs.start([BIN / "broker", "--db", self.db, "--clients", self.clients,
                                        "--workers", self.workers_ep, *extra], name="broker")
        wait_for(lambda: self.jobctl("list", check=False, timeout_ms=500).returncode == 0 or
                 self.broker.poll() is not None, 15, what="broker to answer")
        assert self.broker.poll() is None, "broker exited:\n" + self.procs.log(self.broker)
        return self.broker

    def start_worker(self, role, env=None, extra=()):
        w = self.procs.start([BIN / "worker", "--role", role, "--connect", self.workers_ep, *extra],
                             name=f"worker-{role}", env=env)
        self.workers.append(w)
        return w

    def start_workers(self, n=1, roles=("sample", "score", "aggregate"), env=None):
        return [self.start_worker(r, env=env) for r in roles for _ in range(n)]

    def jobctl(self, *args, check=True, timeout_ms=5000, timeout=60):
        cmd = [str(BIN / "jobctl"), "--broker", self.clients, "--timeout-ms", str(timeout_ms), *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\n"
                                 + self.procs.dump())
        return r

    def status(self, job):
        return json.loads(self.jobctl("status", job, "--json").stdout)

    def wait_state(self, job, states=("done", "failed", "cancelled"), timeout=60):
        last = {}

        def done():
            nonlocal last
            r = self.jobctl("status", job, "--json", check=False, timeout_ms=1000)
            if r.returncode == 0:
                last = json.loads(r.stdout)
                return last.get("state") in states
            return False
        try:
            wait_for(done, timeout, 0.1, what=f"job {job} to reach {states}")
        except AssertionError:
            raise AssertionError(f"job {job} stuck in {last}\n" + self.procs.dump())
        return last

    def submit(self, spec, name="job.json"):
        path = self.tmp / name
        path.write_text(json.dumps(spec) if not isinstance(spec, str) else spec)
        return self.jobctl("submit", path).stdout.strip()

    def export(self, job):
        r = subprocess.run([str(BIN / "jobctl"), "export", job, "--db", str(self.db), "--format", "jsonl"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture
def cluster(procs, tmp_path):
    need("broker", "worker", "jobctl")
    return Cluster(procs, tmp_path)


def synth_spec(n_problems=12, n=4, corrupt=0.3, chunk=4, seed=1, k=None, **extra):
    spec = {"kind": "sample", "name": "synth-test",
            "model": {"backend": "replay", "corrupt": corrupt},
            "dataset": {"format": "synth", "n": n_problems, "seed": seed},
            "sampling": {"n": n, "seed": seed},
            "chunk": chunk}
    if k:
        spec["aggregate"] = {"k": k}
    spec.update(extra)
    return spec


def breakdown_tables(text):
    """The subject / level tables of a text report: {"subject": (header, {name: [cells]}), "level": ...}.
    A table starts at a line "  subject  problems ..." / "  level  problems ..." and ends at a blank
    line or a line that is not a row (a "(...)" note)."""
    tables, cur = {}, None
    for line in text.splitlines():
        words = line.split()
        if line.startswith("  ") and len(words) > 1 and words[0] in ("subject", "level") and words[1] == "problems":
            cur = tables[words[0]] = (words[1:], {})
        elif cur is not None and line.startswith("  ") and line.strip():
            cells = line.split()
            n = len(cur[0])                     # names may hold spaces: the cells are the last n
            cur[1][" ".join(cells[:-n])] = cells[-n:]
        else:
            cur = None
    return tables
