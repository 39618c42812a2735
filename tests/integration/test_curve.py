"""Only authorised peers join (DESIGN.md reliability table): the broker with CURVE on both
endpoints and a ZAP allow-list of client keys, real processes on loopback.

An allowed worker set and an allowed jobctl run a synth job to the end while a jobctl with an
unknown key, a plaintext jobctl, a worker with an unknown key and an independent pyzmq client
(unknown key; plaintext) are refused: jobctl fails with a clear message, the broker logs each
refusal, the refused worker never registers, and the job still completes with exact counts.
Keys come from `bin/jobctl keygen` on every run. Also: start-up refusals (CURVE without an
allow-list, bad key files named with file:line) and --help listing the new flags."""
import json
import os
import subprocess
import time

import msgpack
import pytest
import zmq

from conftest import BIN, need, synth_spec, wait_for


def keygen(tmp, name):
    r = subprocess.run([str(BIN / "jobctl"), "keygen", str(tmp / name)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    pub = r.stdout.strip()
    assert len(pub) == 40
    assert (os.stat(tmp / f"{name}.key").st_mode & 0o777) == 0o600
    assert pub in (tmp / f"{name}.pub").read_text()
    return pub


def z85_secret(path):
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("secret-key"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"no secret-key in {path}")


def curve_env(tmp, server, keyfile):
    e = dict(os.environ)
    e.pop("THINKFAST_CURVE_SERVER_KEY", None)
    e.pop("THINKFAST_CURVE_KEYFILE", None)
    if server:
        e["THINKFAST_CURVE_SERVER_KEY"] = str(tmp / server)
    if keyfile:
        e["THINKFAST_CURVE_KEYFILE"] = str(tmp / keyfile)
    return e


@pytest.fixture
def keys(tmp_path):
    need("broker", "worker", "jobctl")
    if not zmq.has("curve"):
        pytest.skip("pyzmq/libzmq without CURVE")
    k = tmp_path / "keys"
    k.mkdir()
    pubs = {n: keygen(k, n) for n in ("broker", "workers", "ops", "mallory")}
    # allow-list: the workers' .pub appended as is, the operator's key bare with a comment
    (k / "allowed").write_text("# thinkfast clients allowed to connect\n" + (k / "workers.pub").read_text()
                               + f"{pubs['ops']}   # the operator's jobctl\n")
    return k, pubs


def test_only_allowed_keys_join_and_the_job_completes(cluster, keys, monkeypatch):
    k, pubs = keys
    # every jobctl the cluster helper runs uses the operator's key (environment, not flags)
    monkeypatch.setenv("THINKFAST_CURVE_SERVER_KEY", str(k / "broker.pub"))
    monkeypatch.setenv("THINKFAST_CURVE_KEYFILE", str(k / "ops.key"))
    broker = cluster.start_broker(extra=["--curve-secret", k / "broker.key", "--allow-keys", k / "allowed"])
    blog = lambda: cluster.procs.log(broker)
    assert "clients restricted to the allow-list" in blog()

    # a worker with an unknown key (flags, not env): never registers, logs why
    wenv = curve_env(k, "broker.pub", "workers.key")
    intruder = cluster.procs.start([BIN / "worker", "--role", "sample", "--connect", cluster.workers_ep,
                                    "--id", "intruder", "--curve-server-key", k / "broker.pub",
                                    "--curve-keyfile", k / "mallory.key"], name="worker-intruder", env=wenv)
    wait_for(lambda: "refused us" in cluster.procs.log(intruder), 10, what="the intruder worker to log its refusal")
    assert pubs["mallory"] in cluster.procs.log(intruder)

    # the allowed workers (keys from the environment) and the job
    for role in ("sample", "score", "aggregate"):
        cluster.start_worker(role, env=wenv)
    job = cluster.submit(synth_spec(n_problems=8, n=4, chunk=4, corrupt=0.3))

    # refused clients while the job runs
    t0 = time.time()
    r = subprocess.run([str(BIN / "jobctl"), "--broker", cluster.clients, "--timeout-ms", "3000",
                        "--curve-server-key", k / "broker.pub", "--curve-keyfile", k / "mallory.key", "list"],
                       capture_output=True, text=True, timeout=30, env=curve_env(k, None, None))
    assert r.returncode != 0 and r.stdout == ""
    assert "refused our CURVE key" in r.stderr and pubs["mallory"] in r.stderr and "--allow-keys" in r.stderr, r.stderr
    assert time.time() - t0 < 3.0, "a ZAP refusal is reported at once, not after the timeout"
    r = subprocess.run([str(BIN / "jobctl"), "--broker", cluster.clients, "--timeout-ms", "3000", "submit",
                        cluster.tmp / "job.json"], capture_output=True, text=True, timeout=30,
                       env=curve_env(k, None, None))
    assert r.returncode != 0 and r.stdout == ""
    assert "requires CURVE" in r.stderr, r.stderr
    # a jobctl holding an allowed key but the wrong broker key cannot complete the handshake
    r = subprocess.run([str(BIN / "jobctl"), "--broker", cluster.clients, "--timeout-ms", "2000", "list"],
                       capture_output=True, text=True, timeout=30, env=curve_env(k, "mallory.pub", "ops.key"))
    assert r.returncode != 0 and "handshake" in r.stderr, r.stderr

    # an independent client (pyzmq): unknown CURVE key and plaintext get nothing; the allowed key works
    ctx = zmq.Context()
    try:
        def ask(public, secret):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            if public:
                s.curve_serverkey = pubs["broker"].encode()
                s.curve_publickey = public.encode()
                s.curve_secretkey = secret.encode()
            s.connect(cluster.clients)
            s.send_multipart([b"TF", msgpack.packb({"v": 1, "cmd": "list", "rid": 7}, use_bin_type=True)])
            got = s.poll(1500)
            out = msgpack.unpackb(s.recv_multipart()[-1], raw=False) if got else None
            s.close(0)
            return out
        pub, sec = zmq.curve_keypair()
        assert ask(pub.decode(), sec.decode()) is None
        assert ask(None, None) is None
        ok = ask(pubs["ops"], z85_secret(k / "ops.key"))
        assert ok and ok["ok"] is True and ok["rid"] == 7
    finally:
        ctx.term()

    st = cluster.wait_state(job)
    assert st["state"] == "done", st
    assert st["samples_done"] == st["samples_total"] == 32 and st["scores_done"] == 32
    rows = cluster.export(job)
    assert sorted((x["problem"], x["sample"]) for x in rows) == [(p, s) for p in range(8) for s in range(4)]
    ws = json.loads(cluster.jobctl("workers", "--json").stdout)["workers"]
    assert sorted(w["role"] for w in ws) == ["aggregate", "sample", "score"]
    assert "intruder" not in [w["id"] for w in ws]

    # the broker logged every refusal: keys via ZAP, handshakes that never got as far
    log = blog()
    assert f"zap: refused clients connection from 127.0.0.1: client key not in the broker's allow-list; key {pubs['mallory']}" in log
    assert f"zap: refused workers connection from 127.0.0.1: client key not in the broker's allow-list; key {pubs['mallory']}" in log
    assert f"key {pub.decode()}" in log                                   # the pyzmq intruder
    # plaintext and wrong-server-key handshakes: the broker sees a mechanism mismatch, a
    # cryptographic error, or (when the client noticed first and hung up) a dropped handshake
    hs = [line for line in log.splitlines() if "refused a connection on the clients endpoint" in line]
    assert len(hs) >= 2, log
    assert any(w in line for line in hs for w in ("mechanism mismatch", "cryptographic error", "dropped during"))
    assert "intruder registered" not in log
    cluster.procs.stop(broker)
    assert "zap: " in cluster.procs.log(broker) and "refused" in cluster.procs.log(broker)


def run_broker(tmp, *extra):
    return subprocess.run([str(BIN / "broker"), "--db", str(tmp / "db"), "--clients", "tcp://127.0.0.1:1",
                           "--workers", "tcp://127.0.0.1:2", *map(str, extra)], capture_output=True, text=True,
                          timeout=10)


def test_startup_refusals_name_the_problem(keys, tmp_path):
    k, pubs = keys
    r = run_broker(tmp_path, "--curve-secret", k / "broker.key")
    assert r.returncode == 2 and "--allow-any-key" in r.stderr and "ANY client key" in r.stderr, r.stderr
    r = run_broker(tmp_path, "--allow-keys", k / "allowed")
    assert r.returncode == 2 and "needs --curve-secret" in r.stderr, r.stderr
    r = run_broker(tmp_path, "--curve-secret", k / "broker.pub", "--allow-keys", k / "allowed")
    assert r.returncode == 2 and "broker.pub: holds no secret-key" in r.stderr, r.stderr
    bad = tmp_path / "bad_allowed"
    bad.write_text(f"# ok\n{pubs['ops']}\n{pubs['mallory'][:39]}\n")
    r = run_broker(tmp_path, "--curve-secret", k / "broker.key", "--allow-keys", bad)
    assert r.returncode == 2 and f"{bad}:3: expected a 40-character Z85 public key, got 39" in r.stderr, r.stderr
    damaged = tmp_path / "damaged.key"
    damaged.write_text((k / "broker.key").read_text().replace('secret-key = "', 'secret-key = "~'))
    r = run_broker(tmp_path, "--curve-secret", damaged, "--allow-keys", k / "allowed")
    assert r.returncode == 2 and f"{damaged}:6: secret-key: expected 40 Z85 characters, got 41" in r.stderr, r.stderr
    # worker and jobctl: half a configuration, a .pub where a keypair is needed
    r = subprocess.run([str(BIN / "worker"), "--role", "sample", "--curve-keyfile", str(k / "ops.key")],
                       capture_output=True, text=True, timeout=10, env=curve_env(k, None, None))
    assert r.returncode == 2 and "only --curve-keyfile was given" in r.stderr, r.stderr
    r = subprocess.run([str(BIN / "jobctl"), "list"], capture_output=True, text=True, timeout=10,
                       env=curve_env(k, "broker.pub", "ops.pub"))
    assert r.returncode == 2 and "$THINKFAST_CURVE_KEYFILE: " in r.stderr and "ops.pub: holds no secret-key" in r.stderr
    # keygen never overwrites a key silently
    r = subprocess.run([str(BIN / "jobctl"), "keygen", str(k / "ops")], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "ops.key" in r.stderr and "--force" in r.stderr


def test_help_lists_the_curve_flags():
    need("broker", "worker", "jobctl")
    for prog, flags in (("broker", ["--curve-secret", "--allow-keys", "--allow-any-key"]),
                        ("worker", ["--curve-server-key", "--curve-keyfile", "THINKFAST_CURVE_SERVER_KEY"]),
                        ("jobctl", ["--curve-server-key", "--curve-keyfile", "THINKFAST_CURVE_KEYFILE", "keygen"])):
        out = subprocess.run([str(BIN / prog), "--help"], capture_output=True, text=True, timeout=10).stdout
        for f in flags:
            assert f in out, f"{prog} --help lacks {f}"
        assert "default" in out


def test_local_needs_no_curve_even_with_the_environment_set(keys, tmp_path):
    """`jobctl local` runs its own broker on private ipc sockets without CURVE: CURVE settings in
    the environment (meant for a remote broker) must not leak into it or its workers."""
    k, _ = keys
    spec = tmp_path / "local.json"
    spec.write_text(json.dumps(synth_spec(n_problems=6, n=2, chunk=3, corrupt=0.2)))
    r = subprocess.run([str(BIN / "jobctl"), "local", str(spec), "--json"], capture_output=True, text=True,
                       timeout=60, env=curve_env(k, "broker.pub", "ops.key"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["samples"] == 12
