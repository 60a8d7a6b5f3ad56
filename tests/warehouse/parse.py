"""Parse compiled warehouse scripts with sqlglot in their dialect.

    python parse.py DIR DIALECT

Prints one JSON document: statements parsed per file, and the errors."""
import glob
import json
import os
import sys

import sqlglot
from sqlglot.errors import ParseError, TokenError

READ = {"duckdb": "duckdb", "spark": "spark", "bigquery": "bigquery", "snowflake": "snowflake"}


def main():
    d, dialect = sys.argv[1], READ[sys.argv[2]]
    files = sorted(glob.glob(os.path.join(d, "[0-9][0-9]_*.sql")))
    out = {"files": {}, "errors": []}
    for path in files:
        with open(path, encoding="utf-8") as f:
            sql = f.read()
        name = os.path.basename(path)
        try:
            stmts = [s for s in sqlglot.parse(sql, read=dialect, error_level="raise") if s is not None]
            out["files"][name] = len(stmts)
        except (ParseError, TokenError) as e:
            out["errors"].append({"file": name, "error": str(e)[:600]})
    print(json.dumps(out, indent=1))
    sys.exit(1 if out["errors"] else 0)


if __name__ == "__main__":
    main()
