"""How long a fresh process takes to load the Dagster definitions, split into imports and our code.

Usage: .venv/bin/python benchmarks/bench_definitions.py [--runs 5]
"""

import argparse
import statistics
import subprocess
import sys

PROBE = """
import time
t0 = time.perf_counter()
import dagster, dagster_dbt
t1 = time.perf_counter()
from orchestration.definitions import defs
defs.resolve_asset_graph()
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    imports, own = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
        imports.append(float(out[0]))
        own.append(float(out[1]))
    print(f"runs: {runs}")
    print(f"import dagster + dagster_dbt   median {statistics.median(imports):.2f} s  (min {min(imports):.2f})")
    print(f"Definitions + asset graph      median {statistics.median(own):.2f} s  (min {min(own):.2f})")
    total = [a + b for a, b in zip(imports, own)]
    print(f"total                          median {statistics.median(total):.2f} s  (min {min(total):.2f})")


if __name__ == "__main__":
    main()
