#!/usr/bin/env python3
"""The broad-substring page (class S1) beside SQLite, DuckDB and Polars, same data, same run.

The shared peer benchmark (../shared/bench/compare.py) times thirteen classes; this adds the
fourteenth without changing it: the big tenant's first page of 100 with `status=error` and a
substring nearly every name holds (`autobk`). It reuses the shared harness as it is -- its
parameter picking, its engines' loading, its noise-aware timing (`peers.worker`) -- and only
adds the class's query to each engine. Then it times the same request in backdex
(`backdex bench`, in process, query string to JSON body), checks that every engine returns the
same ids in the same order, and prints the medians and ratios.

    python3 benches/broad_peers.py --backdex target/release/backdex \\
        --data /tmp/slim1m.jsonl [--engines sqlite,duckdb,duckdb_sorted,polars] [--reps 25]

(From the project's root; needs `pip install duckdb==2.0.0 polars==2.1.0`.)
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import peers  # noqa: E402  (the shared harness)

CLASS = "S1"
PATTERN = "autobk"
STATUS = "error"


def s1_sql(dialect, p, select="rows"):
    """The class as SQL, in the shared harness's conventions (whole rows; SQLite's instr,
    DuckDB's contains), and nothing else: only this class is timed."""
    cols = "*" if select == "rows" else "id"
    contains = "instr(name, ?) > 0" if dialect == "sqlite" else "contains(name, ?)"
    sql = ("SELECT " + cols + " FROM backups WHERE project_id = ? AND status = ? AND " + contains
           + " ORDER BY created_at DESC, id DESC LIMIT 100")
    return {CLASS: (sql, [p["big"], STATUS, PATTERN], "list")}


def s1_polars(self, p, select):
    import polars as pl
    c = pl.col
    lf = self.df.lazy()
    expr = ((c("project_id") == p["big"]) & (c("status") == STATUS)
            & c("name").str.contains(PATTERN, literal=True))

    def run():
        q = lf.filter(expr).sort(["created_at", "id"], descending=[True, True]).slice(0, 100)
        if select == "ids":
            q = q.select("id")
        return q.collect().get_column("id").to_list()
    return {CLASS: run}


def s1_polars_explain(self, p, select):
    return {}


peers.sql_queries = s1_sql
peers.PolarsEngine.queries = s1_polars
peers.PolarsEngine.explain = s1_polars_explain


def run_peer(engine, data, params, reps, out):
    out.put(peers.worker(engine, data, params, reps, 3, False, "rows", False, 300))


def backdex(binary, data, params, reps):
    big = params["big"]
    path = "/v1/%s/checkpoint_items?name=%s&status=%s&limit=100" % (big, PATTERN, STATUS)
    request = {"class": CLASS, "path": path, "scope": {"project_id": big, "admin": False}}
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps(request) + "\n")
    try:
        timed = subprocess.run([binary, "bench", "--data", data, "--requests", f.name,
                                "--repeat", str(reps)], check=True, capture_output=True, text=True)
        answer = subprocess.run([binary, "query", "--data", data, "--project", big, path],
                                check=True, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    line = json.loads(timed.stdout.splitlines()[0])
    ids = [item["id"] for item in json.loads(answer.stdout)["checkpoint_items"]]
    return line["median_ns"] / 1e6, ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backdex", required=True, help="a release build of backdex")
    ap.add_argument("--data", required=True, help="JSON Lines from the shared gen.py")
    ap.add_argument("--engines", default="sqlite,duckdb,duckdb_sorted,polars")
    ap.add_argument("--reps", type=int, default=25)
    args = ap.parse_args()

    params = peers.pick_params(args.data)
    ours_ms, ours_ids = backdex(args.backdex, args.data, params, max(args.reps, 100))
    print("backdex: %.3f ms, %d ids" % (ours_ms, len(ours_ids)), flush=True)
    ctx = multiprocessing.get_context("fork")   # the patched harness carries over
    best = None
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        out = ctx.Queue()
        proc = ctx.Process(target=run_peer, args=(engine, args.data, params, args.reps, out))
        proc.start()
        result = out.get()
        proc.join()
        q = result["queries"][CLASS]
        same = q["result"] == ours_ids
        print("%s: %.3f ms, %d ids, %s" % (engine, q["median_ms"], len(q["result"]),
                                            "same ids" if same else "DIFFERENT ids"), flush=True)
        if not same:
            sys.exit("%s and backdex disagree on %s" % (engine, CLASS))
        if best is None or q["median_ms"] < best[1]:
            best = (engine, q["median_ms"])
    if best:
        print("| %s | %s %.3f ms | backdex %.1f µs | %.0f× |"
              % (CLASS, best[0], best[1], ours_ms * 1000, best[1] / ours_ms))


if __name__ == "__main__":
    main()
