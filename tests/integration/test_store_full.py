"""A full store is an error, not corruption (DESIGN.md, reliability table), on real processes:
a broker with a tiny --map-max-mb runs a job until the map is full; it stays up, refuses new
jobs with "store full", stops leasing, keeps answering status/list/workers/report, and logs one
clear error. The store, read back independently with python3-lmdb, holds no duplicate and no
stray generation, and exactly what the job's counters say. A restart with the same limit comes
up in the full state (recovery deferred); a restart with a larger limit finishes the job with
exact counts."""
import json
import struct
import subprocess
import time

import lmdb
import msgpack

from conftest import BIN, synth_spec, wait_for

N_PROBLEMS, N = 200, 16          # 3200 generations + scores: several MiB, far more than 1 MiB
TINY = ("--map-max-mb", "1")


def read_generations(db, job_num):
    """(p, s) keys of job_num's generations, read with an independent LMDB binding, read-only;
    checks that the job record's samples_done counts exactly these (committed together)."""
    env = lmdb.open(str(db), readonly=True, lock=False, max_dbs=16, subdir=True)
    try:
        gens = env.open_db(b"generations", create=False)
        jobs = env.open_db(b"jobs", create=False)
        out = []
        with env.begin() as txn:
            job_rec = msgpack.unpackb(txn.get(struct.pack(">Q", job_num), db=jobs), raw=False)
            for k, v in txn.cursor(db=gens):
                assert len(k) == 16, f"generation key of {len(k)} bytes"
                job, p, s = struct.unpack(">QII", k)
                if job != job_num:
                    continue
                rec = msgpack.unpackb(v, raw=False)
                assert (rec["p"], rec["s"]) == (p, s), f"record {rec} under key {(p, s)}"
                out.append((p, s))
            assert job_rec["samples_done"] == len(out), (job_rec["samples_done"], len(out))
        return out
    finally:
        env.close()


def check_exact(rows, n_problems, n):
    keys = [(r["problem"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (problem, sample)"
    assert sorted(keys) == [(p, s) for p in range(n_problems) for s in range(n)]
    assert all(r["correct"] in (True, False) for r in rows), "unscored generation"


def check_partial(keys, n_problems, n):
    assert len(keys) == len(set(keys)), "duplicate generation keys"
    assert len(keys) <= n_problems * n
    assert all(0 <= p < n_problems and 0 <= s < n for p, s in keys), "generation outside the job"


def test_store_full_pauses_intake_then_resumes_after_restart(cluster):
    cluster.start_broker(TINY)
    cluster.start_workers(1)
    job = cluster.submit(synth_spec(n_problems=N_PROBLEMS, n=N, chunk=4))

    def full():
        st = cluster.status(job)
        assert st["state"] != "done", "the job fit in 1 MiB: make it bigger"
        return st if st.get("store") == "full" else None
    st = wait_for(full, 60, 0.1, what="the store to fill")
    assert "--map-max-mb" in st["store_error"] and "limit" in st["store_error"], st["store_error"]
    assert 0 < st["samples_done"] < N_PROBLEMS * N

    # intake paused: a new job is refused with a clear error, nothing is submitted
    r = cluster.jobctl("submit", cluster.tmp / "job.json", check=False)
    assert r.returncode != 0 and "store full" in r.stderr, (r.returncode, r.stderr)
    listed = json.loads(cluster.jobctl("list", "--json").stdout)
    assert [j["job"] for j in listed["jobs"]] == [job]
    assert listed["store"] == "full"
    human = cluster.jobctl("list")
    assert job in human.stdout and "store is full" in human.stderr, human.stderr
    # read-only commands keep working
    ws = json.loads(cluster.jobctl("workers", "--json").stdout)["workers"]
    assert {w["role"] for w in ws} == {"sample", "score", "aggregate"}
    assert cluster.jobctl("report", job, "--json", check=False).returncode in (0, 1)   # answered, not hung
    # no leasing while full: the job does not move over a few retry periods
    before = cluster.status(job)
    time.sleep(4.5)
    after = cluster.status(job)
    assert after["store"] == "full"
    assert cluster.broker.poll() is None, "broker died:\n" + cluster.procs.log(cluster.broker)
    log = cluster.procs.log(cluster.broker)
    if (after["samples_done"], after["scores_done"]) != (before["samples_done"], before["scores_done"]):
        # only a retry that found room (and committed) may move the job
        assert "store writable again" in log, (before, after)
    errors = [line for line in log.splitlines() if " E broker: store full:" in line]
    assert len(errors) == 1, errors
    assert "--map-max-mb" in errors[0] and "free disk space" in errors[0]

    # a clean stop in the full state; the store is intact and matches the job's counters
    assert cluster.procs.stop(cluster.broker) == 0, cluster.procs.log(cluster.broker)
    keys = read_generations(cluster.db, int(job.split("-")[1]))
    check_partial(keys, N_PROBLEMS, N)
    assert len(keys) == after["samples_done"], (len(keys), after["samples_done"])

    # restart with the same limit: up (it may store a little more: pages the old process still
    # pinned are free now), then full again, still answering
    cluster.start_broker(TINY)
    st = wait_for(lambda: (lambda s: s if s.get("store") == "full" else None)(cluster.status(job)), 20,
                  what="the restarted broker to report the full store")
    assert len(keys) <= st["samples_done"] < N_PROBLEMS * N
    assert cluster.procs.stop(cluster.broker) == 0, cluster.procs.log(cluster.broker)
    check_partial(read_generations(cluster.db, int(job.split("-")[1])), N_PROBLEMS, N)

    # restart with a larger limit: the job resumes and completes with exact counts
    cluster.start_broker(("--map-max-mb", "64"))
    st = cluster.wait_state(job, timeout=120)
    assert st["state"] == "done", st
    assert st["samples_done"] == N_PROBLEMS * N and st["scores_done"] == N_PROBLEMS * N
    assert st["store"] == "ok"
    check_exact(cluster.export(job), N_PROBLEMS, N)
    assert cluster.procs.stop(cluster.broker) == 0
    keys = read_generations(cluster.db, int(job.split("-")[1]))
    assert sorted(keys) == [(p, s) for p in range(N_PROBLEMS) for s in range(N)]


def test_map_max_mb_in_help_and_config(cluster):
    h = subprocess.run([str(BIN / "broker"), "--help"], capture_output=True, text=True, timeout=10)
    assert h.returncode == 0 and "--map-max-mb N" in h.stdout and "store full" in h.stdout
    bad = subprocess.run([str(BIN / "broker"), "--db", str(cluster.db), "--map-mb", "8", "--map-max-mb", "4"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--map-max-mb" in bad.stderr
    cluster.start_broker(("--map-max-mb", "3"))
    assert "map_max_mb=3 " in cluster.procs.log(cluster.broker)
    st = json.loads(cluster.jobctl("list", "--json").stdout)
    assert st["store"] == "ok"


def test_disk_full_pauses_then_resumes_without_restart(cluster):
    """The file system refuses to extend data.mdb (the broker's RLIMIT_FSIZE, set from outside with
    prlimit: the kernel then answers EFBIG / short writes exactly as on a full disk): the broker
    pauses instead of stopping; once there is room again its periodic retry resumes the job, and
    real workers redo whatever results were refused: exact counts, no restart."""
    import resource
    if not hasattr(resource, "prlimit"):
        import pytest
        pytest.skip("resource.prlimit is not available")
    cluster.start_broker()
    cluster.start_workers(1, env={"THINKFAST_FAULT_DELAY_MS": "2"})
    job = cluster.submit(synth_spec(n_problems=N_PROBLEMS, n=N, chunk=4))
    wait_for(lambda: cluster.status(job)["samples_done"] >= 320, 30, what="progress before the disk fills")
    data = cluster.db / "data.mdb"
    resource.prlimit(cluster.broker.pid, resource.RLIMIT_FSIZE, (data.stat().st_size + (64 << 10), resource.RLIM_INFINITY))
    st = wait_for(lambda: (lambda s: s if s.get("store") == "full" else None)(cluster.status(job)), 30,
                  what="the disk to fill")
    assert "data.mdb" in st["store_error"] and "free disk space" in st["store_error"], st["store_error"]
    assert st["state"] == "running"
    r = cluster.jobctl("submit", cluster.tmp / "job.json", check=False)
    assert r.returncode != 0 and "store full" in r.stderr, r.stderr
    assert cluster.broker.poll() is None
    resource.prlimit(cluster.broker.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    st = cluster.wait_state(job, timeout=120)
    assert st["state"] == "done", st
    assert st["samples_done"] == N_PROBLEMS * N and st["scores_done"] == N_PROBLEMS * N
    assert st["store"] == "ok" and st["tasks"]["failed"] == 0
    check_exact(cluster.export(job), N_PROBLEMS, N)
    log = cluster.procs.log(cluster.broker)
    assert "store writable again" in log
    assert cluster.procs.stop(cluster.broker) == 0
