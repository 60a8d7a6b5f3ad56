"""Run compiled DuckDB warehouse scripts: load_local.sql, the numbered
scripts in order, export_local.sql, in one database.

    python run_duckdb.py DIR [DATABASE] [--load-only | --skip-load]

--load-only / --skip-load split a run in two (a scale run deletes the
source files once they are loaded, to make room on the disk).

Prints one line per script with its time, then the peak memory."""
import glob
import os
import resource
import sys
import time

import duckdb


def main():
    first = None
    if "--from" in sys.argv:  # --from NN: the numbered scripts from NN on
        i = sys.argv.index("--from")
        first = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    d = args[0]
    db = args[1] if len(args) > 1 else ":memory:"
    con = duckdb.connect(db)
    threads = os.environ.get("C360_DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    scripts = [] if "--skip-load" in flags else [os.path.join(d, "load_local.sql")]
    if "--load-only" not in flags:
        scripts += [p for p in sorted(glob.glob(os.path.join(d, "[0-9][0-9]_*.sql")))
                    if first is None or os.path.basename(p)[:2] >= first]
        scripts.append(os.path.join(d, "export_local.sql"))
    os.makedirs(os.path.join(d, "results"), exist_ok=True)
    total = time.time()
    for path in scripts:
        start = time.time()
        with open(path, encoding="utf-8") as f:
            sql = f.read()
        try:
            if os.environ.get("C360_TRACE"):  # statement by statement, the slow ones named
                for stmt in [x for x in sql.split(";\n") if x.strip()]:
                    t = time.time()
                    con.execute(stmt)
                    if time.time() - t > 5:
                        head = " ".join(stmt.split())[:100]
                        print(f"  {time.time() - t:.1f}s  {head}", flush=True)
            else:
                con.execute(sql)
        except Exception as e:  # name the script that failed
            print(f"FAILED {os.path.basename(path)}: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{os.path.basename(path)}\t{time.time() - start:.2f}s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total\t{time.time() - total:.2f}s\tpeak_rss_mib\t{peak:.0f}")


if __name__ == "__main__":
    main()
