"""Round trip of the crystal <-> ASU codec over whole CDVAE CSV files (prints counts; not a test).

    python benchmarks/asu_round_trip.py [FILE.csv.xz ...] [-j 2]

Default files: ../shared/data/mp_20_partial/*.csv.xz. Each row is classified by
``asu_geometry.verify.round_trip`` as ok, tolerance (the input is only approximately symmetric at
symprec=0.1) or failure; failures and tolerance cases are listed with their reasons.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import pandas as pd
from asu_geometry.verify import round_trip

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_20_partial"


def _check(row: tuple[str, str]) -> tuple[str, str, str, int | None]:
    ident, cif = row
    res = round_trip(cif)
    return ident, res.status, res.reason, res.space_group


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=sorted(SHARED.glob("*.csv.xz")))
    ap.add_argument("-j", "--jobs", type=int, default=2)
    args = ap.parse_args()
    total: Counter[str] = Counter()
    t0 = time.perf_counter()
    with Pool(args.jobs) as pool:
        for path in args.files:
            df = pd.read_csv(path)
            results = pool.map(_check, zip(df.material_id, df.cif, strict=True), chunksize=20)
            counts = Counter(r[1] for r in results)
            total.update(counts)
            print(f"{path.name}: {len(df)} rows, ok {counts['ok']}, tolerance {counts['tolerance']}, "
                  f"failure {counts['failure']}")
            for ident, status, reason, sg in results:
                if status != "ok":
                    print(f"  {status:9s} {ident} (sg {sg}): {reason}")
    n = sum(total.values())
    print(f"all: {n} rows, ok {total['ok']} ({100 * total['ok'] / n:.2f} %), tolerance {total['tolerance']}, "
          f"failure {total['failure']}; {time.perf_counter() - t0:.0f} s with {args.jobs} processes")


if __name__ == "__main__":
    main()
