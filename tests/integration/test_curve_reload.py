"""`kill -HUP <broker>` re-reads the CURVE client allow-list (--allow-keys) without a restart.

A real broker with CURVE and an allow-list holding only key A (the operator's jobctl): a jobctl
with key B is refused; the file gains B + SIGHUP: B is accepted; a malformed file + SIGHUP, then a
missing file + SIGHUP: the old list stays in force (B still accepted) and the broker logs the file
and line (or the file and errno); a file without B + SIGHUP: a fresh client with B is refused while
a connection B opened before the reload stays up and keeps getting answers. Also: SIGHUP on a
broker without an allow-list (--allow-any-key, plaintext) only logs that there is nothing to reload.
Every step waits for the broker's own log line rather than sleeping. Keys come from `jobctl keygen`.
"""
import os
import signal
import subprocess

import msgpack
import pytest
import zmq

from conftest import BIN, need, wait_for
from test_curve import curve_env, keygen, z85_secret


def jobctl_as(cluster, keydir, keyfile, *args, timeout_ms=5000):
    return subprocess.run([str(BIN / "jobctl"), "--broker", cluster.clients, "--timeout-ms", str(timeout_ms),
                           *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=curve_env(keydir, "broker.pub", keyfile))


def hup_and_wait(cluster, broker, needle):
    """Sends SIGHUP and waits until the broker's log holds one more line containing `needle`."""
    before = cluster.procs.log(broker).count(needle)
    broker.send_signal(signal.SIGHUP)
    wait_for(lambda: cluster.procs.log(broker).count(needle) > before or broker.poll() is not None, 15,
             what=f"the broker to log {needle!r} after SIGHUP")
    assert broker.poll() is None, "broker died on SIGHUP:\n" + cluster.procs.log(broker)


def test_sighup_reloads_the_allow_list(cluster, tmp_path, monkeypatch):
    need("broker", "jobctl")
    if not zmq.has("curve"):
        pytest.skip("pyzmq/libzmq without CURVE")
    k = tmp_path / "keys"
    k.mkdir()
    pubs = {n: keygen(k, n) for n in ("broker", "alice", "bob")}
    allowed = k / "allowed"
    allowed.write_text(f"# only alice\n{pubs['alice']}\n")
    # the cluster helper's jobctl (readiness probe) is alice
    monkeypatch.setenv("THINKFAST_CURVE_SERVER_KEY", str(k / "broker.pub"))
    monkeypatch.setenv("THINKFAST_CURVE_KEYFILE", str(k / "alice.key"))
    broker = cluster.start_broker(extra=["--curve-secret", k / "broker.key", "--allow-keys", allowed])
    blog = lambda: cluster.procs.log(broker)
    assert f"1 allowed client key(s) from {allowed}" in blog()

    def bob_ok():
        r = jobctl_as(cluster, k, "bob.key", "list")
        assert r.returncode == 0, f"bob refused: {r.stderr}\n{blog()}"

    def bob_refused():
        r = jobctl_as(cluster, k, "bob.key", "list")
        assert r.returncode != 0 and "refused our CURVE key" in r.stderr and pubs["bob"] in r.stderr, \
            f"rc {r.returncode}: {r.stderr}\n{blog()}"

    # 1. only alice is listed: bob is refused
    bob_refused()
    assert jobctl_as(cluster, k, "alice.key", "list").returncode == 0

    # 2. bob added (a zcert .pub appended as is) + SIGHUP: bob is accepted
    allowed.write_text(f"# alice and bob\n{pubs['alice']}   # alice\n" + (k / "bob.pub").read_text())
    hup_and_wait(cluster, broker, "allow-list reloaded:")
    assert f"allow-list reloaded: 2 keys from {allowed}" in blog()
    bob_ok()

    # a connection bob opens now (pyzmq DEALER) must survive the later reload that drops him
    ctx = zmq.Context()
    try:
        held = ctx.socket(zmq.DEALER)
        held.setsockopt(zmq.LINGER, 0)
        held.curve_serverkey = pubs["broker"].encode()
        held.curve_publickey = pubs["bob"].encode()
        held.curve_secretkey = z85_secret(k / "bob.key").encode()
        held.connect(cluster.clients)

        def ask(sock, rid, wait_ms=10000):
            sock.send_multipart([b"TF", msgpack.packb({"v": 1, "cmd": "list", "rid": rid}, use_bin_type=True)])
            if not sock.poll(wait_ms):
                return None
            return msgpack.unpackb(sock.recv_multipart()[-1], raw=False)

        r = ask(held, 1)
        assert r and r["ok"] is True and r["rid"] == 1, r

        # 3. a malformed file + SIGHUP: the old list (alice, bob) stays; the log names file:line
        allowed.write_text(f"{pubs['alice']}\n{pubs['bob']}\n{pubs['bob'][:39]}\n")
        hup_and_wait(cluster, broker, "allow-list reload failed")
        assert (f"allow-list reload failed, the previous list stays in force: {allowed}:3: "
                f"expected a 40-character Z85 public key, got 39 characters") in blog(), blog()
        bob_ok()

        # 3b. a missing file + SIGHUP: likewise kept, the log names the file
        allowed.unlink()
        hup_and_wait(cluster, broker, "allow-list reload failed")
        assert f"allow-list reload failed, the previous list stays in force: {allowed}: No such file" in blog()
        bob_ok()

        # 4. a file without bob + SIGHUP: a fresh client with bob's key is refused ...
        allowed.write_text(f"{pubs['alice']}\n")
        hup_and_wait(cluster, broker, "allow-list reloaded:")
        assert f"allow-list reloaded: 1 keys from {allowed}" in blog()
        bob_refused()
        fresh = ctx.socket(zmq.DEALER)
        fresh.setsockopt(zmq.LINGER, 0)
        fresh.curve_serverkey = pubs["broker"].encode()
        fresh.curve_publickey = pubs["bob"].encode()
        fresh.curve_secretkey = z85_secret(k / "bob.key").encode()
        fresh.connect(cluster.clients)
        assert ask(fresh, 3, wait_ms=1500) is None
        fresh.close(0)
        # ... while the connection admitted before the reload stays up and is still answered
        r = ask(held, 2)
        assert r and r["ok"] is True and r["rid"] == 2, r
        held.close(0)
    finally:
        ctx.term()
    assert jobctl_as(cluster, k, "alice.key", "list").returncode == 0
    assert cluster.procs.stop(broker) == 0
    assert "stopped cleanly" in blog()


def test_sighup_without_an_allow_list_has_nothing_to_reload(cluster, tmp_path, monkeypatch):
    need("broker", "jobctl")
    # plaintext broker: SIGHUP no longer ends it, it only says there is nothing to reload
    broker = cluster.start_broker()
    hup_and_wait(cluster, broker, "SIGHUP: nothing to reload")
    assert "plaintext broker" in cluster.procs.log(broker)
    cluster.jobctl("list")
    assert cluster.procs.stop(broker) == 0
    if not zmq.has("curve"):
        return
    # --allow-any-key: CURVE without a list
    k = tmp_path / "keys"
    k.mkdir()
    keygen(k, "broker")
    keygen(k, "anyone")
    monkeypatch.setenv("THINKFAST_CURVE_SERVER_KEY", str(k / "broker.pub"))
    monkeypatch.setenv("THINKFAST_CURVE_KEYFILE", str(k / "anyone.key"))
    broker = cluster.start_broker(extra=["--curve-secret", k / "broker.key", "--allow-any-key"])
    hup_and_wait(cluster, broker, "SIGHUP: nothing to reload")
    assert "--allow-any-key: no allow-list" in cluster.procs.log(broker)
    cluster.jobctl("list")


def test_help_mentions_the_reload():
    need("broker")
    out = subprocess.run([str(BIN / "broker"), "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "kill -HUP" in out and "--allow-keys" in out
