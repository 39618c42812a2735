"""Reliability on real processes: SIGKILL / SIGSTOP a worker mid-task, SIGKILL the broker
mid-job and restart it on the same store, a poison task that always crashes its worker, and
malformed frames from an independent raw client on both endpoints. After each, every
(problem, sample) is stored exactly once (read back with jobctl export)."""
import json
import os
import signal
import time

import msgpack
import zmq

from conftest import synth_spec, wait_for

LEASE = ("--lease-ms", "1500")


def check_exact(rows, n_problems, n):
    keys = [(r["problem"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (problem, sample)"
    assert sorted(keys) == [(p, s) for p in range(n_problems) for s in range(n)]
    assert all(r["correct"] in (True, False) for r in rows), "unscored generation"


def leased_by(cluster, pid):
    ws = json.loads(cluster.jobctl("workers", "--json").stdout)["workers"]
    return any(w["pid"] == pid and w["leased"] > 0 for w in ws)


def test_sigkill_worker_mid_task_repeatedly(cluster):
    cluster.start_broker(LEASE)
    cluster.start_worker("score")
    cluster.start_worker("aggregate")
    # 32 samples per task at 40 ms each: ~1.3 s per task, with a partial result streamed at ~1 s,
    # so a kill ~1.1 s into a task lands after some outputs were committed and before the final.
    job = cluster.submit(synth_spec(n_problems=32, n=4, chunk=8, max_attempts=5))
    for _ in range(3):
        slow = cluster.start_worker("sample", env={"THINKFAST_FAULT_DELAY_MS": "40"})
        wait_for(lambda: leased_by(cluster, slow.pid), 20, what="the slow worker to lease a task")
        time.sleep(1.1)
        slow.kill()
        slow.wait()
    assert cluster.status(job)["state"] == "running"
    cluster.start_worker("sample", env={"THINKFAST_FAULT_DELAY_MS": "1"})
    st = cluster.wait_state(job, timeout=60)
    assert st["state"] == "done", st
    assert st["samples_done"] == 128 and st["scores_done"] == 128
    check_exact(cluster.export(job), 32, 4)


def test_sigstop_worker_loses_lease_and_task_is_redone(cluster):
    cluster.start_broker(LEASE)
    stuck = cluster.start_worker("sample", env={"THINKFAST_FAULT_DELAY_MS": "40"})
    cluster.start_worker("score")
    cluster.start_worker("aggregate")
    job = cluster.submit(synth_spec(n_problems=8, n=4, chunk=4))
    wait_for(lambda: leased_by(cluster, stuck.pid), 20, what="the worker to lease a task")
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        helper = cluster.start_worker("sample")
        st = cluster.wait_state(job, timeout=60)
        assert st["state"] == "done", st
    finally:
        os.kill(stuck.pid, signal.SIGCONT)
    check_exact(cluster.export(job), 8, 4)
    # the stopped worker comes back: it re-registers on a fresh socket and serves again
    wait_for(lambda: any(w["pid"] == stuck.pid for w in json.loads(cluster.jobctl("workers", "--json").stdout)["workers"]),
             15, what="the resumed worker to re-register")
    helper.kill()
    job2 = cluster.submit(synth_spec(n_problems=2, n=2, chunk=2), name="job2.json")
    assert cluster.wait_state(job2, timeout=30)["state"] == "done"


def test_sigkill_broker_mid_job_and_restart(cluster):
    cluster.start_broker(LEASE)
    cluster.start_workers(1, env={"THINKFAST_FAULT_DELAY_MS": "5"})
    job = cluster.submit(synth_spec(n_problems=40, n=4, chunk=2))     # 160 samples, ~1 s of work
    wait_for(lambda: cluster.status(job)["samples_done"] >= 30, 20, what="progress before the kill")
    cluster.broker.kill()
    cluster.broker.wait()
    time.sleep(0.3)
    cluster.start_broker(LEASE)                                       # same ports, same store
    st = cluster.wait_state(job, timeout=60)
    assert st["state"] == "done", st
    assert st["samples_done"] == 160 and st["scores_done"] == 160
    check_exact(cluster.export(job), 40, 4)
    online = json.loads(cluster.jobctl("report", job, "--json").stdout)
    offline = json.loads(cluster.jobctl("reaggregate", job, "--db", cluster.db, "--json").stdout)
    assert online == offline


def test_poison_task_fails_after_max_attempts(cluster):
    cluster.start_broker(LEASE)
    env = {"THINKFAST_FAULT_CRASH_PROBLEM": "5"}
    cluster.start_workers(1, env=env)
    spec = synth_spec(n_problems=8, n=2, chunk=4, max_attempts=2)
    job = cluster.submit(spec)
    # a supervisor would restart crashed workers; so do we, until the job gives up
    end = time.time() + 60
    st = {}
    while time.time() < end:
        st = cluster.status(job)
        if st["state"] in ("failed", "done"):
            break
        for w in list(cluster.workers):
            if w.poll() is not None and w.name == "worker-sample":
                cluster.workers.remove(w)
                cluster.start_worker("sample", env=env)
        time.sleep(0.1)
    assert st["state"] == "failed", st
    assert st["error"], st
    print("poison error:", st["error"])
    assert st["tasks"]["failed"] >= 1
    r = cluster.jobctl("watch", job, check=False)
    assert r.returncode == 1 and "failed" in r.stderr


def raw_frames():
    good = msgpack.packb({"v": 1, "cmd": "list"})
    return [
        [b"XX", good],                                        # wrong signature
        [b"garbage bytes \x00\xff"],                          # one frame of garbage
        [b"TF"],                                              # signature only
        [b"TF", b"\xde\x00"],                                 # truncated msgpack (map16 without count)
        [b"TF", b"\x83\xa1v\x01"],                            # map of 3, one entry
        [b"TF", b"\xdf\xff\xff\xff\xff"],                     # map claiming 4 billion entries
        [b"TF", b"\xdd\x7f\xff\xff\xff"],                     # array claiming 2 billion items
        [b"TF", msgpack.packb([1, 2, 3])],                    # not a map
        [b"TF", msgpack.packb({"v": 99, "cmd": "list"})],     # wrong version
        [b"TF", msgpack.packb({"v": 1, "cmd": 5})],           # cmd of the wrong type
        [b"TF", msgpack.packb({"v": 1, "cmd": "explode"})],   # unknown command
        [b"TF", msgpack.packb({"v": 1, "cmd": "status", "job": {"x": 1}})],        # wrong field type
        [b"TF", msgpack.packb({"v": 1, "cmd": "submit", "spec": 12})],
        [b"TF", msgpack.packb({"v": 1, "cmd": "result", "task": "nine", "outputs": 7})],
        [b"TF", msgpack.packb({"v": 1, "cmd": "ready", "role": "wizard", "credit": -1})],
        [b"TF", msgpack.packb({"v": 1, "cmd": "ready", "worker": "x" * 5000, "role": "sample", "credit": 2**40})],
        [b"TF", msgpack.packb({"v": 1, "cmd": "result", "task": 2**63, "attempt": 1, "final": True,
                               "outputs": [{"p": -1, "s": "x"}]})],
        [b"TF", msgpack.packb({"v": 1, "cmd": "fail", "task": 1, "attempt": 1, "error": 3})],
        [b"TF", b"\x81" * 10000],                             # nesting far too deep
        [b"TF", good, b"extra frame"],                        # too many frames
        [b"TF", msgpack.packb({"v": 1, "cmd": "heartbeat"}) + b"trailing"],
    ]


def test_malformed_frames_on_both_endpoints(cluster):
    cluster.start_broker()
    ctx = zmq.Context()
    try:
        for ep in (cluster.clients, cluster.workers_ep):
            for _ in range(2):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(ep)
                for frames in raw_frames():
                    s.send_multipart(frames)
                # a 1 MB random body
                s.send_multipart([b"TF", os.urandom(1 << 20)])
                time.sleep(0.2)
                s.close()
            assert cluster.broker.poll() is None, "broker died on malformed input"
        # the broker still serves: a client reply and a complete job
        assert cluster.jobctl("list").returncode == 0
        cluster.start_workers(1)
        job = cluster.submit(synth_spec(n_problems=6, n=3, chunk=3))
        assert cluster.wait_state(job, timeout=30)["state"] == "done"
        check_exact(cluster.export(job), 6, 3)
    finally:
        ctx.term()
