"""Run the compiled Spark SQL scripts on Spark in local mode (pyspark from
PyPI, the machine's Java), with the raw and seed tables loaded by DuckDB's
load_local.sql, then write the results into a DuckDB database that
compare.py reads. Not part of CI (pyspark is large); see BENCHMARKS.md.

    python run_spark.py DUCKDB_DIR SPARK_DIR OUT_DUCKDB

DUCKDB_DIR and SPARK_DIR: `c360 warehouse sql` of one workspace for duckdb
and for spark."""
import glob
import os
import shutil
import sys
import time

import duckdb
from pyspark.sql import SparkSession

RESULTS = ["rejects", "load_counts", "stg_crm_customers", "stg_web_events", "stg_transactions",
           "clean_crm_customers", "clean_web_events", "clean_transactions",
           "customer360_id_map", "match_candidates", "customer360_profiles", "customer360_events",
           "identity_summary"]


def statements(sql):
    return [s for s in sql.split(";\n") if s.strip() and not all(
        line.strip().startswith("--") or not line.strip() for line in s.splitlines())]


def main():
    duck_dir, spark_dir, out_db = sys.argv[1:4]
    work = os.path.abspath(os.path.join(spark_dir, "spark-run"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # The raw tables and seeds, as loaded into a warehouse: via DuckDB.
    t0 = time.time()
    con = duckdb.connect()
    con.execute(open(os.path.join(duck_dir, "load_local.sql"), encoding="utf-8").read())
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'raw_%' OR table_name LIKE 'seed_%'").fetchall()]
    for t in tables:
        con.execute(f"COPY {t} TO '{work}/{t}.parquet' (FORMAT parquet)")
    con.close()
    print(f"load (DuckDB) {time.time() - t0:.1f}s", flush=True)
    spark = (SparkSession.builder.master("local[2]").appName("c360-warehouse")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.ansi.enabled", "false")
             .config("spark.sql.warehouse.dir", os.path.join(work, "warehouse"))
             .config("spark.driver.memory", "3g")
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    for t in tables:
        spark.read.parquet(f"{work}/{t}.parquet").write.mode("overwrite").saveAsTable(t)
    total = time.time()
    for path in sorted(glob.glob(os.path.join(spark_dir, "[0-9][0-9]_*.sql"))):
        if os.path.basename(path) == "00_seeds.sql":
            continue
        start = time.time()
        for stmt in statements(open(path, encoding="utf-8").read()):
            try:
                spark.sql(stmt).collect() if stmt.lstrip().upper().startswith(("SELECT", "WITH")) else spark.sql(stmt)
            except Exception as e:
                print(f"FAILED {os.path.basename(path)}: {str(e).splitlines()[0][:1500]}\n--- statement:\n{stmt[:1500]}", file=sys.stderr)
                sys.exit(1)
        print(f"{os.path.basename(path)}\t{time.time() - start:.1f}s", flush=True)
    print(f"spark total\t{time.time() - total:.1f}s", flush=True)
    for t in RESULTS:
        spark.table(t).write.mode("overwrite").parquet(f"{work}/out_{t}")
    spark.stop()
    if os.path.exists(out_db):
        os.remove(out_db)
    out = duckdb.connect(out_db)
    for t in RESULTS:
        out.execute(f"CREATE TABLE {t} AS SELECT * FROM read_parquet('{work}/out_{t}/*.parquet')")
    out.close()
    print("results in", out_db)


if __name__ == "__main__":
    main()
