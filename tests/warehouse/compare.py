"""Compare a warehouse run (a DuckDB database) with the workspace's own run
(its SQLite database): rejects, staged and clean counts, the two
clusterings (pairwise precision, recall, F1), profile counts.

    python compare.py WORKSPACE_DB DUCKDB_DB [--details N]

Prints one JSON document."""
import json
import sqlite3
import sys
from collections import Counter

import duckdb


def pairs(n):
    return n * (n - 1) // 2


def pairwise(local, warehouse, keys):
    """Pairwise agreement of two clusterings over `keys`."""
    joint = Counter((local[k], warehouse[k]) for k in keys)
    tp = sum(pairs(n) for n in joint.values())
    lp = sum(pairs(n) for n in Counter(local[k] for k in keys).values())
    wp = sum(pairs(n) for n in Counter(warehouse[k] for k in keys).values())
    precision = tp / wp if wp else 1.0
    recall = tp / lp if lp else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"records": len(keys), "local_pairs": lp, "warehouse_pairs": wp, "common_pairs": tp,
            "precision": precision, "recall": recall, "f1": f1}


def split_merge_examples(local, warehouse, keys, n):
    """Records the two runs group differently: a few examples."""
    by_local, by_wh = {}, {}
    for k in keys:
        by_local.setdefault(local[k], set()).add(k)
        by_wh.setdefault(warehouse[k], set()).add(k)
    out = []
    for members in by_local.values():
        whs = {warehouse[k] for k in members}
        if len(whs) > 1:
            out.append({"local_cluster": sorted(members)[:6], "warehouse_clusters": len(whs)})
        if len(out) >= n:
            break
    merged = []
    for members in by_wh.values():
        ls = {local[k] for k in members}
        if len(ls) > 1:
            merged.append({"warehouse_cluster": sorted(members)[:6], "local_clusters": len(ls)})
        if len(merged) >= n:
            break
    return {"split_by_warehouse": out, "merged_by_warehouse": merged}


def main():
    ws_db, duck_db = sys.argv[1], sys.argv[2]
    details = int(sys.argv[sys.argv.index("--details") + 1]) if "--details" in sys.argv else 0
    s = sqlite3.connect(ws_db)
    d = duckdb.connect(duck_db, read_only=True)
    out = {}
    local_rej = set(s.execute("SELECT source, row_num, reason FROM rejects").fetchall())
    wh_rej = set(tuple(r) for r in d.execute("SELECT source, CAST(row_num AS BIGINT), reason FROM rejects").fetchall())
    out["rejects"] = {"local": len(local_rej), "warehouse": len(wh_rej),
                      "only_local": sorted(local_rej - wh_rej)[:50], "only_warehouse": sorted(wh_rej - local_rej)[:50]}
    counts = {}
    for t in ["stg_crm_customers", "stg_web_events", "stg_transactions",
              "clean_crm_customers", "clean_web_events", "clean_transactions"]:
        counts[t] = {"local": s.execute(f"SELECT count(*) FROM {t}").fetchone()[0],
                     "warehouse": d.execute(f"SELECT count(*) FROM {t}").fetchone()[0]}
    out["counts"] = counts
    local = dict(s.execute("SELECT record_key, customer360_id FROM customer360_id_map").fetchall())
    wh = dict(d.execute("SELECT record_key, customer360_id FROM customer360_id_map").fetchall())
    keys = sorted(set(local) & set(wh))
    out["records"] = {"local": len(local), "warehouse": len(wh), "common": len(keys),
                      "only_local": sorted(set(local) - set(wh))[:20], "only_warehouse": sorted(set(wh) - set(local))[:20]}
    out["clusters"] = {"local": len(set(local.values())), "warehouse": len(set(wh.values()))}
    out["pairwise_all"] = pairwise(local, wh, keys)
    ct = [k for k in keys if not k.startswith("web:")]
    out["pairwise_crm_transactions"] = pairwise(local, wh, ct)
    if details:
        out["examples"] = split_merge_examples(local, wh, keys, details)
    tables = {r[0] for r in d.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "customer360_profiles" in tables:
        out["profiles"] = {"local": s.execute("SELECT count(*) FROM customer360_profiles").fetchone()[0],
                           "warehouse": d.execute("SELECT count(*) FROM customer360_profiles").fetchone()[0]}
    if "match_candidates" in tables:
        out["candidates"] = {
            "local": dict(s.execute("SELECT band, count(*) FROM match_candidates GROUP BY band").fetchall()),
            "warehouse": dict(d.execute("SELECT band, count(*) FROM match_candidates GROUP BY band").fetchall())}
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
