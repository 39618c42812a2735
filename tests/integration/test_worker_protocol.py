"""bin/worker against a fake broker written here in Python (pyzmq + msgpack): registration,
heartbeats, streamed bounded results, cancel, reregister, broker silence, SIGTERM, fault
injection. An independent implementation of the broker side of jobs/proto.h."""
import os
import signal
import time

import msgpack
import pytest
import zmq

from conftest import BIN, free_port, need, wait_for

GSM_SOL = "Tom has 3 apples and buys 4 more.\n3 + 4 = 7\n#### 7"


class FakeBroker:
    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.sock.bind(self.endpoint)
        self.idents = set()
        self.quiet = False

    def recv(self, timeout=5.0, want=None):
        """Next message (identity, body); skips heartbeats/progress unless asked for them. While
        waiting it heartbeats every worker it has seen (a live broker) unless self.quiet."""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise AssertionError(f"no {want or 'message'} within {timeout}s")
            if not self.quiet:
                for ident in self.idents:
                    self.send(ident, "heartbeat")
            if not self.sock.poll(int(min(left, 0.05) * 1000)):
                continue
            frames = self.sock.recv_multipart()
            assert len(frames) == 3 and frames[1] == b"TF", frames[:2]
            body = msgpack.unpackb(frames[2], raw=False)
            assert body["v"] == 1
            if body["cmd"] == "ready":
                self.idents.add(frames[0])
            if want is None and body["cmd"] in ("heartbeat", "progress"):
                continue
            if want is not None and body["cmd"] not in (want if isinstance(want, tuple) else (want,)):
                continue
            body["_size"] = len(frames[2])
            return frames[0], body

    def send(self, ident, cmd, **fields):
        body = {"v": 1, "cmd": cmd, **fields}
        self.sock.send_multipart([ident, b"TF", msgpack.packb(body, use_bin_type=True)])

    def close(self):
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def fake():
    need("worker")
    fb = FakeBroker()
    yield fb
    fb.close()


def sample_task(tid, problems, n=4, corrupt=0.0, seed=1, sol=GSM_SOL):
    return dict(task=tid, attempt=1, job="j-000001", kind="sample", lease_ms=10000,
                payload={"job": "j-000001", "chunk": 0,
                         "model": {"backend": "replay", "corrupt": corrupt, "path": "", "device": "cpu"},
                         "sampling": {"n": n, "temperature": 0.8, "top_p": 0.95, "top_k": 0, "min_p": 0.0,
                                      "max_tokens": 100000, "seed": seed, "stop": []},
                         "prompt": {"template": "plain", "system": ""},
                         "problems": [{"p": p, "id": str(p), "question": "q?", "solution": sol, "answer": "7"}
                                      for p in problems]})


def collect_results(fake, tid, timeout=10):
    outs, msgs = [], []
    while True:
        _, m = fake.recv(timeout, want="result")
        assert m["task"] == tid
        msgs.append(m)
        outs.extend(m["outputs"])
        if m["final"]:
            return outs, msgs


def start_worker(procs, fake, role="sample", env=None, hb=100, extra=()):
    return procs.start([BIN / "worker", "--role", role, "--connect", fake.endpoint, "--heartbeat-ms", str(hb),
                        *extra], name=f"worker-{role}", env=env)


def test_register_heartbeat_and_sample(procs, fake):
    w = start_worker(procs, fake, extra=("--id", "w-test", "--credit", "2"))
    ident, m = fake.recv(want="ready")
    assert m["worker"] == "w-test" and m["role"] == "sample" and m["credit"] == 2
    assert m["pid"] == w.pid and isinstance(m["host"], str) and m["host"]
    _, hb = fake.recv(2, want="heartbeat")   # heartbeats on the data socket
    assert hb["worker"] == "w-test"
    fake.send(ident, "task", **sample_task(7, [0, 1, 2], n=5, corrupt=0.5))
    outs, msgs = collect_results(fake, 7)
    keys = sorted((o["p"], o["s"]) for o in outs)
    assert keys == [(p, s) for p in range(3) for s in range(5)]       # each exactly once
    assert msgs[-1]["telemetry"]["outputs"] == 15
    for o in outs:
        assert o["finish"] == "stop" and o["tokens"] == len(o["text"].split()) and o["time_s"] >= 0
    wrong = [o for o in outs if not o["text"].endswith("#### 7")]
    assert 0 < len(wrong) < 15
    # same task again: identical texts (deterministic in (seed, p, s))
    fake.send(ident, "task", **sample_task(8, [0, 1, 2], n=5, corrupt=0.5))
    outs2, _ = collect_results(fake, 8)
    assert sorted((o["p"], o["s"], o["text"]) for o in outs) == sorted((o["p"], o["s"], o["text"]) for o in outs2)


def test_results_are_streamed_in_bounded_messages(procs, fake):
    start_worker(procs, fake)
    ident, _ = fake.recv(want="ready")
    big = ("word " * 20000) + "\n#### 7"      # ~100 KB per sample
    fake.send(ident, "task", **sample_task(3, list(range(10)), n=4, sol=big))
    outs, msgs = collect_results(fake, 3, timeout=20)
    assert len(outs) == 40
    assert len(msgs) >= 3, [m["_size"] for m in msgs]
    assert max(m["_size"] for m in msgs) <= (1 << 20) + 200_000
    assert [m["final"] for m in msgs] == [False] * (len(msgs) - 1) + [True]


def test_score_and_bad_payload(procs, fake):
    start_worker(procs, fake, role="score")
    ident, _ = fake.recv(want="ready")
    items = [{"p": 0, "s": 0, "text": "so #### 1,234", "answer": "1234"},
             {"p": 0, "s": 1, "text": "The answer is 5.", "answer": "1234"},
             {"p": 1, "s": 0, "text": "no number here", "answer": "3"}]
    fake.send(ident, "task", task=11, attempt=1, job="j-000001", kind="score", lease_ms=10000,
              payload={"job": "j-000001", "chunk": 0, "grader": "gsm8k", "items": items})
    outs, _ = collect_results(fake, 11)
    by = {(o["p"], o["s"]): o for o in outs}
    assert bool(by[(0, 0)]["correct"]) and by[(0, 0)]["canonical"] == "1234"
    assert not by[(0, 1)]["correct"] and by[(0, 1)]["extracted"] == "5"
    assert not by[(1, 0)]["correct"]
    # a bad payload fails the task with a message naming the field; the worker keeps serving
    fake.send(ident, "task", task=12, attempt=1, job="j-000001", kind="score", lease_ms=10000,
              payload={"job": "j-000001", "grader": "nope", "items": []})
    _, f = fake.recv(want="fail")
    assert f["task"] == 12 and "grader" in f["error"]
    fake.send(ident, "task", task=13, attempt=1, job="j-000001", kind="score", lease_ms=10000,
              payload={"job": "j-000001", "grader": "gsm8k", "items": items[:1]})
    outs, _ = collect_results(fake, 13)
    assert len(outs) == 1


def test_cancel_running_task(procs, fake):
    start_worker(procs, fake)
    ident, _ = fake.recv(want="ready")
    big = ("word " * 50000) + "\n#### 7"
    fake.send(ident, "task", **sample_task(21, list(range(200)), n=16, sol=big))   # ~1.6 GB of text
    _, first = fake.recv(10, want="result")
    assert first["final"] is False
    fake.send(ident, "cancel", task=21)
    # no final result for 21; the worker takes the next task
    fake.send(ident, "task", **sample_task(22, [0], n=2))
    end = time.time() + 15
    while True:
        _, m = fake.recv(max(0.1, end - time.time()), want="result")
        if m["task"] == 22:
            assert m["final"] and len(m["outputs"]) == 2
            break
        assert not m["final"], "cancelled task sent a final result"


def test_reregister_uses_fresh_socket(procs, fake):
    start_worker(procs, fake, extra=("--id", "w-re"))
    ident1, _ = fake.recv(want="ready")
    fake.send(ident1, "reregister")
    ident2, m = fake.recv(5, want="ready")
    assert m["worker"] == "w-re"
    assert ident2 != ident1           # a fresh socket, not ZeroMQ's auto-reconnect


def test_broker_silence_triggers_reconnect(procs, fake):
    fake.quiet = True
    start_worker(procs, fake, hb=100)
    ident1, _ = fake.recv(want="ready")
    # say nothing: after 3 heartbeats (300 ms) + back-off the worker re-registers on a new socket
    t0 = time.time()
    ident2, _ = fake.recv(5, want="ready")
    assert ident2 != ident1 and time.time() - t0 >= 0.25
    # keep it alive with heartbeats: no more reconnects
    fake.quiet = False
    end = time.time() + 1.0
    while time.time() < end:
        fake.send(ident2, "heartbeat")
        try:
            ident3, m = fake.recv(0.1, want="ready")
            raise AssertionError("reconnected although the broker answered")
        except AssertionError as e:
            if "reconnected" in str(e):
                raise


def test_sigterm_sends_disconnect(procs, fake):
    w = start_worker(procs, fake, extra=("--id", "w-term"))
    fake.recv(want="ready")
    w.send_signal(signal.SIGTERM)
    _, m = fake.recv(5, want="disconnect")
    assert m["worker"] == "w-term"
    assert w.wait(5) == 0


def test_fault_injection_aborts(procs, fake):
    w = start_worker(procs, fake, env={"THINKFAST_FAULT_CRASH_PROBLEM": "2"})
    ident, _ = fake.recv(want="ready")
    fake.send(ident, "task", **sample_task(5, [0, 1, 2, 3], n=2))
    wait_for(lambda: w.poll() is not None, 10, what="worker to abort")
    assert w.returncode == -signal.SIGABRT


def test_help_and_bad_flags():
    need("worker")
    import subprocess
    r = subprocess.run([str(BIN / "worker"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--credit" in r.stdout and "default 1" in r.stdout
    r = subprocess.run([str(BIN / "worker"), "--role", "painter", "--connect", "tcp://127.0.0.1:1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "painter" in r.stderr
    r = subprocess.run([str(BIN / "worker"), "--role", "sample", "--credit", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--credit" in r.stderr
    r = subprocess.run([str(BIN / "worker"), "--role", "sample", "--connect", "bogus://nowhere"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "bogus://nowhere" in r.stderr


def test_progress_during_long_task(procs, fake):
    start_worker(procs, fake, env={"THINKFAST_FAULT_DELAY_MS": "30"}, hb=100)
    ident, _ = fake.recv(want="ready")
    fake.send(ident, "task", **sample_task(31, list(range(4)), n=5))      # 20 samples * 30 ms
    seen = []
    end = time.time() + 10
    while time.time() < end:
        _, m = fake.recv(5, want=("progress", "result"))
        if m["cmd"] == "progress":
            assert m["task"] == 31 and m["total"] == 20 and 0 <= m["done"] <= 20
            seen.append(m["done"])
        elif m["final"]:
            break
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] > seen[0], seen


def test_worker_survives_malformed_broker_messages(procs, fake):
    """Whatever a (broken or hostile) broker sends, the worker fails the task with a message or
    drops the frame; it never crashes, and then serves a good task."""
    w = start_worker(procs, fake)
    ident, _ = fake.recv(want="ready")
    good = sample_task(99, [0, 1], n=2)
    bad_payloads = [
        {},                                                           # nothing
        {"model": 3, "sampling": {"n": 2}, "problems": []},
        {"model": {}, "sampling": {"n": -1}, "problems": []},
        {"model": {}, "sampling": {"n": 2**40}, "problems": []},
        {"model": {}, "sampling": {"n": "two"}, "problems": []},
        {"model": {"backend": "nope"}, "sampling": {"n": 1}, "problems": [{"p": 0}]},
        {"model": {"corrupt": 7.5}, "sampling": {"n": 1}, "problems": [{"p": 0}]},
        {"model": {}, "sampling": {"n": 1}, "problems": "x"},
        {"model": {}, "sampling": {"n": 1}, "problems": [{"p": "zero"}]},
        {"model": {}, "sampling": {"n": 1}, "problems": [{"p": -5}]},
        {"model": {}, "sampling": {"n": 1, "stop": [1, 2, None]}, "problems": [{"p": 0, "solution": 5}]},
    ]
    tid = 1000
    for pl in bad_payloads:
        tid += 1
        fake.send(ident, "task", task=tid, attempt=1, job="j-000001", kind="sample", lease_ms=1000, payload=pl)
        _, m = fake.recv(5, want=("fail", "result"))
        assert m["task"] == tid
        if m["cmd"] == "fail":
            assert m["error"]
    raw = [[ident, b"XX", b"\x80"], [ident, b"TF", b"\xc1"], [ident, b"TF", b"\xdf\xff\xff\xff\xff"],
           [ident, b"TF", msgpack.packb({"v": 1, "cmd": "task"})],
           [ident, b"TF", msgpack.packb({"v": 1, "cmd": "task", "task": 5, "kind": "sample", "payload": 3})],
           [ident, b"TF", msgpack.packb({"v": 1, "cmd": "task", "task": 6, "kind": "painting", "payload": {}})],
           [ident, b"TF", msgpack.packb({"v": 2, "cmd": "task"})],
           [ident, b"TF", msgpack.packb({"v": 1, "cmd": "cancel", "task": "x"})],
           [ident, b"TF", msgpack.packb({"v": 1, "cmd": "self-destruct"})],
           [ident, b"TF", b"\x91" * 5000]]
    for frames in raw:
        fake.sock.send_multipart(frames)
    fake.send(ident, "task", **good)
    outs, _ = collect_results(fake, 99)
    assert sorted((o["p"], o["s"]) for o in outs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert w.poll() is None
