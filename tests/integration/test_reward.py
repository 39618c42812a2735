"""tests/integration/test_reward.py — reward models end to end: `jobctl local` with the replay
sampler and a reward model scoring every sample (workers/score/reward.h).

The models are built here from ../shared/data/models/stories260K: bin/convert turns the llama2.c
checkpoint into an HF Llama directory (the PRM, a causal LM), and a copy with a random
`score.weight` [1, hidden] head and architectures = LlamaForSequenceClassification is the ORM.
The store is read directly (LMDB + msgpack, not our C reader) to check that every stored score
carries a finite reward (and, for a PRM, its step scores, which `jobctl export` repeats); the
report must carry best-of-N and weighted best-of-N.
"""
import json
import math
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT, breakdown_tables, need, synth_spec

DATA = Path(os.environ.get("THINKFAST_DATA", ROOT.parent / "shared" / "data"))
STORIES = DATA / "models" / "stories260K"


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        tensors[name] = (t["dtype"], t["shape"], raw[base + b:base + e])
    return tensors


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    need("convert", "jobctl", "broker", "worker")
    if not (STORIES / "stories260K.bin").exists():
        pytest.skip(f"no {STORIES}/stories260K.bin")
    import numpy as np
    tmp = tmp_path_factory.mktemp("rm")
    causal = tmp / "prm"
    r = subprocess.run([str(BIN / "convert"), "llama2c", str(STORIES / "stories260K.bin"), str(STORIES / "tok512.bin"),
                        str(causal)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    orm = tmp / "orm"
    orm.mkdir()
    cfg = json.loads((causal / "config.json").read_text())
    hidden = cfg["hidden_size"]
    cfg["architectures"] = ["LlamaForSequenceClassification"]
    cfg["num_labels"] = 1
    (orm / "config.json").write_text(json.dumps(cfg, indent=1))
    t = read_safetensors(causal / "model.safetensors")
    t.pop("lm_head.weight", None)  # a sequence classifier has no LM head
    w = np.random.default_rng(7).normal(0, 1.0, size=(1, hidden)).astype("<f4")
    t["score.weight"] = ("F32", [1, hidden], w.tobytes())
    write_safetensors(orm / "model.safetensors", t)
    shutil.copy(causal / "tokenizer.bin", orm / "tokenizer.bin")
    return {"orm": orm, "prm": causal}


def read_scores(db):
    import lmdb
    import msgpack
    env = lmdb.open(str(db), readonly=True, lock=False, max_dbs=16)
    out = {}
    with env.begin() as txn:
        scores = env.open_db(b"scores", txn=txn, create=False)
        for k, v in txn.cursor(db=scores):
            job, p, s = struct.unpack(">QII", k)
            out[(job, p, s)] = msgpack.unpackb(v, raw=False)
    env.close()
    return out


def run_local(tmp_path, spec):
    f = tmp_path / "job.json"
    f.write_text(json.dumps(spec))
    db = tmp_path / "db"
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--db", str(db), "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout), db, r.stderr


def test_orm_rewards_stored_and_weighted_bon_reported(tmp_path, models):
    n_problems, n = 10, 4
    spec = synth_spec(n_problems=n_problems, n=n, chunk=5, corrupt=0.4, k=[1, 2, 4],
                      score={"grader": "gsm8k", "reward": {"model": str(models["orm"]), "kind": "orm", "device": "cpu"}})
    rep, db, _ = run_local(tmp_path, spec)
    scores = read_scores(db)
    assert len(scores) == n_problems * n
    rewards = [sc["reward"] for sc in scores.values()]
    assert all(isinstance(x, float) and math.isfinite(x) for x in rewards), rewards
    assert len(set(rewards)) > n_problems  # the head tells samples apart
    assert rep["samples"] == n_problems * n
    for key in ("bon", "wbon"):
        assert key in rep, sorted(rep)
        assert len(rep[key]) == 3 and all(0.0 <= v <= 1.0 for v in rep[key]), rep[key]
    # best-of-1 is the accuracy of a random sample, whatever the rewards: equals coverage@1
    assert abs(rep["bon"][0] - rep["coverage"][0]) < 1e-9


def test_prm_rewards_are_step_probabilities(tmp_path, models):
    n_problems, n = 6, 3
    spec = synth_spec(n_problems=n_problems, n=n, chunk=3, corrupt=0.3, k=[1, 3],
                      score={"reward": {"model": str(models["prm"]), "kind": "prm", "device": "cpu",
                                        "prm_token": "The", "prm_separator": "\n", "prm_aggregate": "min"}})
    rep, db, _ = run_local(tmp_path, spec)
    scores = read_scores(db)
    assert len(scores) == n_problems * n
    for sc in scores.values():
        assert 0.0 < sc["reward"] < 1.0, sc
        # the step scores are stored with the score; "min" aggregate: the reward is their minimum
        steps = sc.get("steps")
        assert isinstance(steps, list) and len(steps) >= 1, sc
        assert all(isinstance(x, float) and 0.0 < x < 1.0 for x in steps), sc
        assert sc["reward"] == min(steps), sc
    assert "wbon" in rep
    assert sum(len(sc["steps"]) > 1 for sc in scores.values()) > 0  # multi-step samples exist
    # jobctl export carries them: the same numbers, line by line
    (job,) = {j for (j, _, _) in scores}
    r = subprocess.run([str(BIN / "jobctl"), "export", "j-%06d" % job, "--db", str(db), "--format", "jsonl"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == n_problems * n
    for row in lines:
        assert row["steps"] == scores[(job, row["problem"], row["sample"])]["steps"], row
    # offline regrading under another grader rewrites scores but keeps rewards and steps
    r = subprocess.run([str(BIN / "jobctl"), "rescore", "j-%06d" % job, "--db", str(db), "--grader", "math", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    after = read_scores(db)
    assert {k: (v["reward"], v["steps"]) for k, v in after.items()} == \
        {k: (v["reward"], v["steps"]) for k, v in scores.items()}


def test_orm_scores_and_export_have_no_steps(tmp_path, models):
    spec = synth_spec(n_problems=2, n=2, chunk=2,
                      score={"grader": "gsm8k", "reward": {"model": str(models["orm"]), "kind": "orm", "device": "cpu"}})
    _, db, _ = run_local(tmp_path, spec)
    scores = read_scores(db)
    assert len(scores) == 4 and all("steps" not in sc for sc in scores.values()), scores
    (job,) = {j for (j, _, _) in scores}
    r = subprocess.run([str(BIN / "jobctl"), "export", "j-%06d" % job, "--db", str(db)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout and all("steps" not in json.loads(x) for x in r.stdout.splitlines())


def test_bad_reward_model_fails_the_job_with_a_clear_error(tmp_path, models):
    spec = synth_spec(n_problems=2, n=2, chunk=2,
                      score={"reward": {"model": str(models["prm"]), "kind": "orm", "device": "cpu"}}, max_attempts=1)
    f = tmp_path / "job.json"
    f.write_text(json.dumps(spec))
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "score.weight" in r.stderr + r.stdout, (r.stdout[-2000:], r.stderr[-2000:])


def cell(x):
    return None if x == "-" else float(x)


def test_report_text_shows_bon_per_subject_and_level(tmp_path, models):
    """`jobctl local` prints the broker's report (`jobctl report`): with rewards its subject and
    level tables carry bon@k and wbon@k at every k of [1, 2, 4] (they fit), equal (to the 3
    decimals shown) to reaggregate --json on the same store, which equals the online stats."""
    spec = synth_spec(n_problems=12, n=4, chunk=6, corrupt=0.4, k=[1, 2, 4],
                      score={"grader": "gsm8k", "reward": {"model": str(models["orm"]), "kind": "orm", "device": "cpu"}})
    f = tmp_path / "job.json"
    f.write_text(json.dumps(spec))
    db = tmp_path / "db"
    r = subprocess.run([str(BIN / "jobctl"), "local", str(f), "--db", str(db)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    online = r.stdout
    r = subprocess.run([str(BIN / "jobctl"), "reaggregate", "j-000001", "--db", str(db), "--json"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert "bon" in js and js["k"] == [1, 2, 4]
    offline = subprocess.run([str(BIN / "jobctl"), "reaggregate", "j-000001", "--db", str(db)], capture_output=True,
                             text=True, timeout=60).stdout
    for text in (online, offline):
        tables = breakdown_tables(text)
        assert set(tables) == {"subject", "level"}, text
        for what, key in (("subject", "by_subject"), ("level", "by_level")):
            header, rows = tables[what]
            assert header == ["problems", "cov@1", "cov@4", "maj@4",
                              "bon@1", "wbon@1", "bon@2", "wbon@2", "bon@4", "wbon@4"], text
            assert set(rows) == set(js[key]) and rows, (rows, js[key])
            for name, cells in rows.items():
                want = js[key][name]
                assert int(cells[0]) == want["problems"]
                for j in range(3):
                    for col, metric in ((4 + 2 * j, "bon"), (5 + 2 * j, "wbon")):
                        got, ref = cell(cells[col]), want[metric][j]
                        assert (got is None) == (ref is None), (what, name, metric, j, cells, want)
                        if ref is not None:
                            assert abs(got - ref) <= 5e-4 + 1e-9, (what, name, metric, j, cells, want)
        assert "to fit the width" not in text          # every k shown: no note
    # the rewards matter somewhere: at k = 4 best-of-N differs from coverage@1 in some row
    assert any(abs(v["bon"][2] - v["coverage"][0]) > 1e-6 for v in js["by_level"].values())
