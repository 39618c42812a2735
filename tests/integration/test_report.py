"""The report commands on real runs: two replay jobs (a "teacher" with few corrupted samples and a
"student" with many) run end to end by `jobctl local --db DIR` (broker + workers as processes),
then, offline from the store:
  compare --json     the lower-corrupt job has the higher coverage@1; values equal reaggregate's
                     and coverage@1 recomputed here from the exported samples; subject/level
                     breakdowns and the time axis are there
  compare --plot     a valid SVG (xml.etree) naming both jobs, with k and GPU-time axes; PNG when
                     the machine can convert
  rescore            the same grader changes nothing and the stored stats stay identical (read
                     with python3-lmdb, independently of our C code); another grader changes
                     scores, and going back restores the original stats exactly; refused while
                     a broker holds the store
  export --format csv  RFC 4180 rows that match the JSONL export
"""
import csv
import io
import json
import os
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import lmdb
import msgpack
import pytest

from conftest import BIN, ROOT, Cluster, breakdown_tables, need, synth_spec

SVG = "{http://www.w3.org/2000/svg}"
N_PROBLEMS, N_SAMPLES, K = 36, 8, [1, 2, 4, 8]


def report_bin(cmd, marker=None):
    """bin/jobctl, after checking that it dispatches `cmd` (and its --help mentions `marker`)."""
    need("jobctl")
    r = subprocess.run([str(BIN / "jobctl"), cmd, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "usage: jobctl " + cmd in r.stdout, r.stdout + r.stderr
    assert marker is None or marker in r.stdout, r.stdout
    return BIN / "jobctl"


def run(prog, *args, check=True, timeout=120):
    r = subprocess.run([str(prog), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{prog} {' '.join(map(str, args))} -> {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def stored_stats(db, job_id):
    """The job's stats record, decoded by python3-lmdb + msgpack (not by our C code)."""
    env = lmdb.open(str(db), readonly=True, lock=False, max_dbs=16, subdir=True)
    try:
        sub = env.open_db(b"stats", create=False)
        with env.begin(db=sub) as txn:
            v = txn.get(struct.pack(">Q", job_id))
            return msgpack.unpackb(v, raw=False) if v is not None else None
    finally:
        env.close()


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory):
    """A store holding j-000001 (corrupt 0.2) and j-000002 (corrupt 0.7), both done."""
    need("broker", "worker", "jobctl")
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "db"
    for name, corrupt in (("teacher", 0.2), ("student", 0.7)):
        spec = synth_spec(n_problems=N_PROBLEMS, n=N_SAMPLES, corrupt=corrupt, chunk=6, seed=3, k=K)
        spec["name"] = name
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(spec))
        run(BIN / "jobctl", "local", path, "--db", db, timeout=180)
    return tmp, db


def export_jsonl(db, job):
    r = run(BIN / "jobctl", "export", job, "--db", db, "--format", "jsonl")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def coverage_at_1(rows):
    by_p = {}
    for r in rows:
        by_p.setdefault(r["problem"], []).append(1 if r["correct"] else 0)
    return sum(sum(v) / len(v) for v in by_p.values()) / len(by_p)


def test_compare_json(two_jobs):
    tmp, db = two_jobs
    prog = report_bin("compare")
    r = run(prog, "compare", "j-000001", "student", "--db", db, "--json", "--budget-axis")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert [x["job"] for x in lines] == ["j-000001", "j-000002"]
    teacher, student = lines
    assert teacher["name"] == "teacher" and student["name"] == "student"
    ts, ss = teacher["stats"], student["stats"]
    assert ts["k"] == K and ss["k"] == K
    assert ts["problems"] == ss["problems"] == N_PROBLEMS
    assert ts["samples"] == ss["samples"] == N_PROBLEMS * N_SAMPLES
    # the lower-corrupt job covers more at k = 1 (expected 0.8 vs 0.3: a wide margin)
    assert ts["coverage"][0] > ss["coverage"][0] + 0.2, (ts["coverage"], ss["coverage"])
    # coverage is non-decreasing in k and bounded by 1; majority@k never exceeds coverage@k
    for s in (ts, ss):
        assert all(a <= b + 1e-12 for a, b in zip(s["coverage"], s["coverage"][1:]))
        assert all(0 <= m <= c + 1e-12 <= 1 + 1e-12 for m, c in zip(s["majority"], s["coverage"]))
        lo_hi = s["coverage_ci"][0]
        assert lo_hi[0] <= s["coverage"][0] <= lo_hi[1]
    # coverage@1 equals the mean per-problem fraction of correct samples from the export
    for job, s in (("j-000001", ts), ("j-000002", ss)):
        assert abs(coverage_at_1(export_jsonl(db, job)) - s["coverage"][0]) < 1e-9
    # same numbers as reaggregate (same code, input and seed)
    for job, s in (("j-000001", ts), ("j-000002", ss)):
        ra = json.loads(run(BIN / "jobctl", "reaggregate", job, "--db", db, "--json").stdout)
        assert ra["coverage"] == pytest.approx(s["coverage"], abs=1e-9)
        assert ra["majority"] == pytest.approx(s["majority"], abs=1e-9)
    # subject / level breakdown: every problem in exactly one slice
    for s in (ts, ss):
        assert sum(v["problems"] for v in s["by_subject"].values()) == N_PROBLEMS
        assert sum(v["problems"] for v in s["by_level"].values()) == N_PROBLEMS
        assert all(k.isdigit() for k in s["by_level"])
    # the time axis: per-job budgets and the shared grid
    assert ts["time"]["mean_sample_s"] > 0 and len(ts["time"]["budget_s"]) == len(K)
    grid = teacher["budget"]["budget_s"]
    assert grid == student["budget"]["budget_s"] and len(grid) >= 2
    assert all(b == pytest.approx(2 * a) for a, b in zip(grid, grid[1:]))


def test_compare_table_and_plot(two_jobs):
    tmp, db = two_jobs
    prog = report_bin("compare")
    svg = tmp / "fig.svg"
    r = run(prog, "compare", "teacher", "student", "--db", db, "--plot", svg)
    assert "coverage@k" in r.stdout and "majority@k" in r.stdout
    assert "teacher" in r.stdout and "student" in r.stdout
    assert "by subject" in r.stdout and "by level" in r.stdout
    root = ET.parse(svg).getroot()                    # well-formed XML
    assert root.tag == SVG + "svg"
    texts = [t.text or "" for t in root.iter(SVG + "text")]
    assert "teacher" in texts and "student" in texts  # the legend names each job
    assert any("samples per problem k" in t for t in texts)
    assert any(t.startswith("GPU-") and "per problem" in t for t in texts)
    assert any("Inference scaling" in t for t in texts)
    # k tick labels on the log-2 axis
    for k in ("1", "2", "4", "8"):
        assert k in texts
    assert len(list(root.iter(SVG + "polyline"))) >= 4   # two jobs x (at least) two panels
    # PNG: converted when the machine can, else the SVG is kept with a message
    png = tmp / "fig.png"
    r = run(prog, "compare", "teacher", "student", "--db", db, "--plot", png)
    assert (tmp / "fig.svg").exists()
    if png.exists():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "converter" in r.stderr, r.stderr


def test_compare_errors(two_jobs):
    tmp, db = two_jobs
    prog = report_bin("compare")
    r = run(prog, "compare", "teacher", "nosuchjob", "--db", db, check=False)
    assert r.returncode == 1 and "nosuchjob" in r.stderr
    r = run(prog, "compare", "teacher", "--db", db, "--k", "1,x", check=False)
    assert r.returncode == 2 and "--k" in r.stderr
    r = run(prog, "compare", "teacher", "--db", tmp / "nowhere", check=False)
    assert r.returncode == 1 and "no store" in r.stderr


def test_rescore_same_grader_changes_nothing_then_roundtrip(two_jobs, tmp_path):
    _, db0 = two_jobs
    db = tmp_path / "db"                               # a copy: other tests keep the original
    subprocess.run(["cp", "-r", str(db0), str(db)], check=True)
    prog = report_bin("rescore")
    before = stored_stats(db, 1)
    rows_before = export_jsonl(db, "j-000001")
    r = run(prog, "rescore", "j-000001", "--db", db, "--json")
    out = json.loads(r.stdout)
    assert out["grader"] == "gsm8k" and out["regraded"] == N_PROBLEMS * N_SAMPLES
    assert out["changed"] == 0 and out["stats_changed"] is False and out["written"] is False
    assert stored_stats(db, 1) == before               # the record, byte for byte decoded
    assert export_jsonl(db, "j-000001") == rows_before
    # a grader that finds no \boxed{} answer in GSM8K-style texts: every correct sample flips
    n_correct = sum(r["correct"] for r in rows_before)
    out = json.loads(run(prog, "rescore", "teacher", "--db", db, "--grader", "math", "--json").stdout)
    assert out["to_wrong"] == n_correct and out["to_correct"] == 0 and out["written"] is True
    after = stored_stats(db, 1)
    assert after["stats"]["coverage"] == [0, 0, 0, 0] and after["samples"] == N_PROBLEMS * N_SAMPLES
    assert not any(r["correct"] for r in export_jsonl(db, "j-000001"))
    ra = json.loads(run(BIN / "jobctl", "reaggregate", "j-000001", "--db", db, "--json").stdout)
    assert ra["coverage"] == [0, 0, 0, 0]
    # back to the job's grader: the scores and the stats are the original ones again
    out = json.loads(run(prog, "rescore", "teacher", "--db", db, "--json").stdout)
    assert out["to_correct"] == n_correct
    assert export_jsonl(db, "j-000001") == rows_before
    assert stored_stats(db, 1)["stats"] == before["stats"]
    # the other job was never touched
    assert stored_stats(db, 2) == stored_stats(db0, 2)


def test_rescore_refused_while_broker_holds_store(two_jobs, procs, tmp_path):
    _, db0 = two_jobs
    db = tmp_path / "db"
    subprocess.run(["cp", "-r", str(db0), str(db)], check=True)
    prog = report_bin("rescore")
    c = Cluster(procs, tmp_path, db=db)
    broker = c.start_broker()
    before = stored_stats(db, 1)
    r = run(prog, "rescore", "j-000001", "--db", db, "--grader", "math", check=False)
    assert r.returncode == 1
    assert f"pid {broker.pid}" in r.stderr and "broker" in r.stderr, r.stderr
    # a dry run only reads: fine next to the broker, and writes nothing
    out = json.loads(run(prog, "rescore", "j-000001", "--db", db, "--grader", "math", "--dry-run", "--json").stdout)
    assert out["dry_run"] is True and out["written"] is False and out["changed"] > 0
    procs.stop(broker)
    assert stored_stats(db, 1) == before


def test_export_csv_matches_jsonl(two_jobs):
    tmp, db = two_jobs
    prog = report_bin("export", "csv")
    r = subprocess.run([str(prog), "export", "student", "--db", str(db), "--format", "csv"], capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    raw = r.stdout
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") >= 1 + N_PROBLEMS * N_SAMPLES
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")))
    ref = export_jsonl(db, "j-000002")
    assert len(rows) == len(ref) == N_PROBLEMS * N_SAMPLES
    for c, j in zip(rows, ref):
        assert (int(c["problem"]), int(c["sample"])) == (j["problem"], j["sample"])
        assert c["text"] == j["text"]                  # multi-line texts survive the quoting
        assert c["correct"] == ("1" if j["correct"] else "0")
        assert c["extracted"] == j["extracted"] and c["canonical"] == j["canonical"]
        assert int(c["tokens"]) == j["tokens"] and float(c["time_s"]) == pytest.approx(j["time_s"])
        assert c["subject"] and c["level"].isdigit()


MATH500 = ROOT.parent / "shared" / "data" / "math500" / "test.jsonl"


def test_math_subject_level_breakdown(tmp_path):
    need("broker", "worker", "jobctl")
    if not MATH500.exists():
        pytest.skip(f"no MATH500 data at {MATH500}")
    spec = {"kind": "sample", "name": "math-replay", "model": {"backend": "replay", "corrupt": 0.4},
            "dataset": {"format": "math", "path": str(MATH500), "limit": 40},
            "sampling": {"n": 4, "seed": 5}, "aggregate": {"k": [1, 2, 4]}, "chunk": 10}
    path = tmp_path / "math.json"
    path.write_text(json.dumps(spec))
    db = tmp_path / "db"
    run(BIN / "jobctl", "local", path, "--db", db, timeout=180)
    prog = report_bin("compare")
    s = json.loads(run(prog, "compare", "math-replay", "--db", db, "--json").stdout)["stats"]
    # the subjects and levels of the first 40 MATH500 problems, counted here from the file
    want_subj, want_lvl = {}, {}
    with open(MATH500) as f:
        for line in list(f)[:40]:
            p = json.loads(line)
            want_subj[p["subject"]] = want_subj.get(p["subject"], 0) + 1
            lv = str(p["level"]).replace("Level ", "")
            want_lvl[lv] = want_lvl.get(lv, 0) + 1
    assert {k: v["problems"] for k, v in s["by_subject"].items()} == want_subj
    assert {k: v["problems"] for k, v in s["by_level"].items()} == want_lvl
    # slice coverage@1 averages back to the job's (weighted by problems)
    tot = sum(v["problems"] * v["coverage"][0] for v in s["by_subject"].values()) / 40
    assert tot == pytest.approx(s["coverage"][0], abs=1e-9)
    r = run(prog, "compare", "math-replay", "--db", db)
    assert "by subject" in r.stdout and "by level" in r.stdout
    assert all(subj in r.stdout for subj in want_subj)


def test_report_text_without_rewards_has_no_bon_columns(two_jobs):
    """Jobs without rewards: the text report's subject / level tables keep their four columns
    (problems, cov@kmin, cov@kmax, maj@kmax: the --json values), and no best-of-N anywhere, in
    reaggregate (the report's printer) nor in compare."""
    tmp, db = two_jobs
    text = run(BIN / "jobctl", "reaggregate", "teacher", "--db", db).stdout
    js = json.loads(run(BIN / "jobctl", "reaggregate", "teacher", "--db", db, "--json").stdout)
    assert "bon" not in js
    tables = breakdown_tables(text)
    assert set(tables) == {"subject", "level"}, text
    for what, key in (("subject", "by_subject"), ("level", "by_level")):
        header, rows = tables[what]
        assert header == ["problems", "cov@1", "cov@8", "maj@8"], text
        assert set(rows) == set(js[key])
        for name, cells in rows.items():
            v = js[key][name]
            assert int(cells[0]) == v["problems"]
            for got, ref in zip(cells[1:], (v["coverage"][0], v["coverage"][3], v["majority"][3])):
                assert abs(float(got) - ref) <= 5e-4 + 1e-9, (what, name, cells, v)
    assert "bon" not in text and "best-of-N" not in text
    cmp = run(report_bin("compare"), "compare", "teacher", "student", "--db", db).stdout
    assert "by subject (problems, coverage@1, coverage@8, majority@8)\n" in cmp, cmp
    assert "bon" not in cmp and "best-of-N" not in cmp
