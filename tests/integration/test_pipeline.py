"""End to end on real processes: broker + workers on loopback, driven by bin/jobctl.
submit -> done with exact counts, report == reaggregate, jobctl local's coverage vs the replay
backend's closed form, bad job files, cancel, --help everywhere."""
import json
import os
import struct
import subprocess

import lmdb
import msgpack
import pytest

from conftest import BIN, ROOT, need, synth_spec


def check_exact(rows, n_problems, n):
    keys = [(r["problem"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (problem, sample)"
    assert sorted(keys) == [(p, s) for p in range(n_problems) for s in range(n)]


def lmdb_keys(db, name, job_id):
    """(p, s) keys of a job in one of the store's named databases, read independently of our C code
    (python3-lmdb, read-only): keys are job u64 | p u32 | s u32, big-endian."""
    env = lmdb.open(str(db), readonly=True, lock=False, max_dbs=16, subdir=True)
    try:
        sub = env.open_db(name.encode(), create=False)
        out = []
        with env.begin(db=sub) as txn:
            for k, v in txn.cursor():
                j, p, s = struct.unpack(">QII", k)
                if j == job_id:
                    out.append((p, s))
                    msgpack.unpackb(v, raw=False)          # every record is valid msgpack
        return out
    finally:
        env.close()


def test_submit_done_exact_counts_and_reaggregate(cluster):
    cluster.start_broker()
    cluster.start_workers(1)
    job = cluster.submit(synth_spec(n_problems=12, n=4, chunk=4, corrupt=0.3))
    assert job.startswith("j-")
    st = cluster.wait_state(job)
    assert st["state"] == "done", st
    assert st["samples_done"] == st["samples_total"] == 48 and st["scores_done"] == 48
    assert st["tasks"]["failed"] == 0 and st["tasks"]["ready"] == 0 and st["tasks"]["leased"] == 0
    rows = cluster.export(job)
    check_exact(rows, 12, 4)
    expect = [(p, s) for p in range(12) for s in range(4)]
    jid = int(job.split("-")[1])
    assert lmdb_keys(cluster.db, "generations", jid) == expect    # byte order = (p, s) order, no duplicates
    assert lmdb_keys(cluster.db, "scores", jid) == expect
    assert all(r["correct"] in (True, False) and isinstance(r["text"], str) for r in rows)
    # scored correctness matches what the replay backend did (wrong iff the final answer changed)
    n_correct = sum(r["correct"] for r in rows)
    online = json.loads(cluster.jobctl("report", job, "--json").stdout)
    assert online["samples"] == 48 and online["correct"] == n_correct
    assert online["k"] == [1, 2, 4]
    offline = cluster.jobctl("reaggregate", job, "--db", cluster.db, "--json").stdout
    assert json.loads(offline) == online
    # --k recomputes other columns offline
    other = json.loads(cluster.jobctl("reaggregate", job, "--db", cluster.db, "--k", "1,3", "--json").stdout)
    assert other["k"] == [1, 3] and other["coverage"][0] == online["coverage"][0]
    # human forms
    out = cluster.jobctl("report", job).stdout
    assert "coverage" in out and "majority" in out
    out = cluster.jobctl("status", job).stdout
    assert "done" in out
    lst = json.loads(cluster.jobctl("list", "--json").stdout)
    assert [j["job"] for j in lst["jobs"]] == [job]
    ws = json.loads(cluster.jobctl("workers", "--json").stdout)
    assert sorted(w["role"] for w in ws["workers"]) == ["aggregate", "sample", "score"]


def test_local_coverage_matches_closed_form(tmp_path):
    need("broker", "worker", "jobctl")
    corrupt, n = 0.4, 8
    spec = synth_spec(n_problems=300, n=n, chunk=25, corrupt=corrupt, k=[1, 2, 4, 8])
    f = tmp_path / "local.json"
    f.write_text(json.dumps(spec))
    db = tmp_path / "db"
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--db", str(db), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["problems"] == 300 and rep["samples"] == 300 * n
    # coverage@k = mean over problems of 1 - C(n-c,k)/C(n,k); in expectation 1 - corrupt^k.
    # 300 problems: the standard error of coverage@1 is about sqrt(p(1-p)/(300*8)) ~ 0.01.
    for k, cov in zip(rep["k"], rep["coverage"]):
        assert abs(cov - (1 - corrupt ** k)) < 0.04 + 0.0 * k, (k, cov)
    assert abs(rep["coverage"][0] - (1 - corrupt)) < 0.04
    # the store was kept (--db) and reaggregates to the same stats
    off = subprocess.run([str(BIN / "jobctl"), "reaggregate", "j-000001", "--db", str(db), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout) == rep
    # jobctl local prints the human report by default, and cleans up: temp dir removed, children reaped
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    r2 = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--workers", "2"], capture_output=True, text=True,
                        timeout=120, env=env)
    assert r2.returncode == 0 and "coverage" in r2.stdout, r2.stderr
    assert list(tmpdir.iterdir()) == []
    assert "died" not in r2.stderr and "killing" not in r2.stderr


BAD_FILES = [
    ('{"kind": "sample", "dataset": {"format": "synth"},\n "sampling": {"n": -3}}', "2:", "sampling.n"),
    ('{"kind": "sample", "dataset": {"format": "synth"}, "sampling": {"temprature": 1}}', "1:", "temprature"),
    ('{"kind": "sample", "dataset": {"format": "synth"},\n  "model": {"backend": "foo"}}', "2:", "model.backend"),
    ('{"kind": "sample", "dataset": {"format": "synth"}, "sampling": {"n": 4}', "1:", ""),   # truncated JSON
    ('{"kind": "sample", "dataset": {"format": "synth"}, "chunk": "eight"}', "1:", "chunk"),
]


@pytest.mark.parametrize("text,line,field", BAD_FILES)
def test_bad_job_files_are_rejected_before_submit(cluster, text, line, field):
    cluster.start_broker()
    path = cluster.tmp / "bad.json"
    path.write_text(text)
    r = cluster.jobctl("submit", path, check=False)
    assert r.returncode != 0 and r.stdout == ""
    msg = r.stderr.strip()
    assert msg.startswith(f"{path}:{line}"), msg          # FILE:LINE:COL: FIELD: message
    assert field in msg, msg
    assert json.loads(cluster.jobctl("list", "--json").stdout)["jobs"] == []


def test_missing_file_and_unknown_job(cluster):
    cluster.start_broker()
    r = cluster.jobctl("submit", cluster.tmp / "nope.json", check=False)
    assert r.returncode != 0 and "nope.json" in r.stderr
    r = cluster.jobctl("status", "j-000042", check=False)
    assert r.returncode != 0 and "j-000042" in r.stderr


def test_cancel(cluster):
    cluster.start_broker()
    cluster.start_workers(1, env={"THINKFAST_FAULT_DELAY_MS": "20"})
    job = cluster.submit(synth_spec(n_problems=40, n=4, chunk=2))
    r = cluster.jobctl("cancel", job)
    assert "cancelled" in r.stdout
    st = cluster.wait_state(job, timeout=10)
    assert st["state"] == "cancelled"
    w = cluster.jobctl("watch", job, check=False)
    assert w.returncode == 1 and "cancelled" in w.stderr


def test_watch_plain_lines_and_exit_code(cluster):
    cluster.start_broker()
    cluster.start_workers(1)
    job = cluster.submit(synth_spec(n_problems=20, n=2, chunk=5))
    r = cluster.jobctl("watch", job, timeout=60)
    assert r.returncode == 0
    assert "\r" not in r.stderr and "done" in r.stderr and "samples/s" in r.stderr


def test_no_broker_is_a_clear_error(tmp_path):
    need("jobctl")
    r = subprocess.run([str(BIN / "jobctl"), "--broker", "tcp://127.0.0.1:9", "--timeout-ms", "200", "list"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "no reply" in r.stderr


@pytest.mark.parametrize("sub", ["submit", "status", "list", "cancel", "watch", "report", "workers", "export",
                                 "reaggregate", "local", "gen-data"])
def test_every_subcommand_has_help(sub):
    need("jobctl")
    r = subprocess.run([str(BIN / "jobctl"), sub, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "usage: jobctl" in r.stdout, (sub, r.stdout, r.stderr)


def test_bad_arguments():
    need("jobctl")
    for args, needle in [(["--timeout-ms", "x", "list"], "--timeout-ms"), (["frobnicate"], "frobnicate"),
                         (["status"], "missing"), (["status", "j-1", "--bogus"], "--bogus"),
                         (["local", "x.json", "--workers", "0"], "--workers"),
                         (["reaggregate", "j-1", "--db", "/nonexistent-db", "--k", "1"], "nonexistent"),
                         (["export", "j-1", "--db", "/tmp", "--format", "xml"], "xml")]:
        r = subprocess.run([str(BIN / "jobctl"), *args], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and needle in r.stderr, (args, r.stderr)


def test_native_backend_through_the_worker_factory(tmp_path):
    """The sample worker's backend factory loads the ENGINE's native backend from a job's model
    spec (stories260K converted to a HF directory): generations land for every (problem, sample)."""
    need("broker", "worker", "jobctl", "convert")
    data = os.environ.get("THINKFAST_DATA", str(ROOT.parent / "shared" / "data"))
    src = os.path.join(data, "models", "stories260K")
    if not os.path.exists(os.path.join(src, "stories260K.bin")):
        pytest.skip("stories260K not in " + data)
    model = tmp_path / "model"
    r = subprocess.run([str(BIN / "convert"), "llama2c", os.path.join(src, "stories260K.bin"),
                        os.path.join(src, "tok512.bin"), str(model)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    spec = {"kind": "sample", "name": "native-smoke",
            "model": {"backend": "native", "path": str(model), "device": "cpu"},
            "dataset": {"format": "synth", "n": 4, "seed": 1},
            "sampling": {"n": 2, "max_tokens": 16, "seed": 3}, "chunk": 2}
    f = tmp_path / "native.json"
    f.write_text(json.dumps(spec))
    db = tmp_path / "db"
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--db", str(db), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 8
    rows = [json.loads(x) for x in subprocess.run([str(BIN / "jobctl"), "export", "j-000001", "--db", str(db)],
                                                  capture_output=True, text=True, timeout=60).stdout.splitlines()]
    check_exact(rows, 4, 2)
    assert all(r["tokens"] > 0 and r["time_s"] > 0 and r["finish"] in ("stop", "length") for r in rows)
    # a missing model is a task failure with the loader's message, not a crash
    spec["model"]["path"] = str(tmp_path / "no-such-model")
    spec["max_attempts"] = 1
    f.write_text(json.dumps(spec))
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, TMPDIR=str(tmp_path)))     # a failed run keeps its logs: keep them here
    assert r.returncode != 0 and "no-such-model" in r.stderr, r.stderr
