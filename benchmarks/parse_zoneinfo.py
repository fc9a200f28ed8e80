"""Benchmark parse_zoneinfo: parse the largest real zoneinfo capture N times and print the seconds.

The capture with the most nodes (then the most lines) under tests/data wins, so the
figure tracks four-node guests once such captures exist. Usage:
    python benchmarks/parse_zoneinfo.py [--count 1000] [--file PATH]
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.metrics import parse_zoneinfo  # noqa: E402


def largest_capture() -> Path:
    candidates = sorted((ROOT / "tests" / "data").glob("**/zoneinfo"))
    if not candidates:
        raise SystemExit("no zoneinfo capture under tests/data")

    def weight(path: Path):
        text = path.read_text()
        return (len(set(line.split(",")[0] for line in text.splitlines() if line.startswith("Node "))),
                text.count("\n"))
    return max(candidates, key=weight)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--file", type=Path)
    args = ap.parse_args()
    path = args.file or largest_capture()
    text = path.read_text()
    info = parse_zoneinfo(text, str(path))  # warm-up; also validates the capture
    nodes = info.zones.index.get_level_values("node").nunique()
    start = time.perf_counter()
    for _ in range(args.count):
        parse_zoneinfo(text, str(path))
    elapsed = time.perf_counter() - start
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {nodes} node(s), "
          f"{text.count(chr(10))} lines, {args.count} parses in {elapsed:.3f} s "
          f"({elapsed / args.count * 1e3:.3f} ms each)")
    print(f"{elapsed:.3f}")


if __name__ == "__main__":
    main()
