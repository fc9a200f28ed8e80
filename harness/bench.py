"""Deterministic code-path cost: alloc+free per order and page-fault cost, booted under QEMU -icount.

Under ``-icount shift=0,sleep=off`` (TCG) the guest clock advances one nanosecond per
emulated instruction, so in-guest timings count instructions, not host time: repeats
of one kernel agree to a fraction of a percent on a noisy shared machine. They do not
model caches or pipelines: a figure is a code-path length, not a cycle count.

Which path an order takes (Linux 6.12 mm/page_alloc.c, pcp_allowed_order()): orders up
to PAGE_ALLOC_COSTLY_ORDER (3) and pageblock_order (9, with THP) are served by the
per-cpu lists, which never reach the buddy free lists and their region sorting; every
other order (4-8, 10) goes to the buddy allocator on each alloc and free.

What is and is not deterministic across boots (measured, BENCHMARKS.md): the pcp path
and order 10 repeat to a few units in thousands. A buddy-path pair of order 4-8 costs
what the smallest free block of at least that order costs to split and merge back, and
which blocks are free after boot depends on what ran before (ssh logins, timers) and on
the kernel image: such figures are exact within one boot but can differ by tens of
percent between boots and kernels. The interface reports that order (``split_from``); a
ratio between variants whose allocations split blocks of different orders compares two
different paths, so the summary gives none. Each buddy order below 10 is therefore
measured twice: as the boot left the free lists, and "split from 10", with every free
block of the orders in between held first (``bench ... split=1``): the longest path,
6 pieces and 6 merges at order 4, the same in every boot.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import kernel, topology
from harness.errors import UserError
from harness.fs import write_csv
from harness.metrics import parse_control_result
from harness.metrics.pfbench import parse_pfbench
from harness.metrics.region_alloc_test import CONTROL
from harness.session import guest
from harness.table import render_table
from harness.variant import parse_variants
from harness.vm import VM

ICOUNT_ARGS = ("-icount", "shift=0,sleep=off")
PCP_ORDERS = frozenset({0, 1, 2, 3, 9})
MAX_ORDER = 10
#: alloc+free rounds per bench command (the interface takes at most 65536)
BENCH_COUNT = 20000
#: pfbench: (order, arguments) for order-0 faults and THP (order-9) faults
PFBENCH = ((0, "-m 64 -r 10 -o 0"), (9, "-m 128 -r 10 -o 9"))
#: repeats of one kernel that differ by more than this are not a deterministic figure
DETERMINISM = 0.005
UNIT_NOTE = "virtual ns under -icount shift=0 (1 ns = 1 emulated instruction): counts instructions, not cycles"


def path_of(order: int) -> str:
    return "pcp" if order in PCP_ORDERS else "buddy"


def parse_orders(spec: str) -> tuple[int, ...]:
    """"0-10", "0,5,9" -> orders; each 0..10."""
    orders: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise UserError(f"--orders {spec!r}: expected orders like 0-10 or 0,5,9") from None
        if not 0 <= first <= last <= MAX_ORDER:
            raise UserError(f"--orders {spec!r}: orders run from 0 to {MAX_ORDER}")
        orders.extend(range(first, last + 1))
    if not orders:
        raise UserError("--orders: give at least one order")
    return tuple(dict.fromkeys(orders))


@dataclass(frozen=True)
class CostOptions:
    variants: tuple[str, ...] = ("regions+mem_region_sort=0", "regions")
    topology: str = "two-node"
    orders: tuple[int, ...] = tuple(range(MAX_ORDER + 1))
    repeat: int = 2
    pfbench: bool = True
    out: Path | None = None
    source: str | None = None


def bench_runs(orders: Sequence[int]) -> list[tuple[str, int, bool]]:
    """(measure, order, split) per bench command: every order as booted, and each buddy order
    below MAX_ORDER split from MAX_ORDER too."""
    runs = [(f"alloc+free order {o}", o, False) for o in orders]
    runs += [(f"alloc+free order {o} split from {MAX_ORDER}", o, True)
             for o in orders if path_of(o) == "buddy" and o < MAX_ORDER]
    return runs


def _measure(vm: VM, orders: Sequence[int], has_interface: bool, pfbench: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if has_interface:
        for measure, order, split in bench_runs(orders):
            # split=1 only when asked: a kernel whose interface predates it still runs the rest
            res = vm.run(f"echo 'bench nid=0 order={order} count={BENCH_COUNT}{' split=1' * split}' > {CONTROL} "
                         f"&& cat {CONTROL}", timeout=900, check=True)
            got = parse_control_result(res.stdout, f"{CONTROL} ({measure})")
            rows.append({"measure": measure, "path": path_of(order), "order": order,
                         "vns": float(got["ns_per_op"]), "split_from": got.get("split_from", math.nan)})
    if pfbench:
        for order, args in PFBENCH:
            res = vm.run(f"pfbench {args}", timeout=900, check=True)
            value = parse_pfbench(res.stdout, f"pfbench {args}")["ns_per_fault"]
            rows.append({"measure": f"pfbench order {order}", "path": "fault", "order": order, "vns": value,
                         "split_from": math.nan})
    return rows


def run_cost(opts: CostOptions, progress: Callable[[str], None] = print) -> pd.DataFrame:
    """Boot every variant ``repeat`` times (interleaved) under -icount and measure; one row per figure."""
    variants = parse_variants(opts.variants, "--variants")
    if opts.repeat < 1:
        raise UserError(f"--repeat {opts.repeat}: give 1 or more")
    topo = topology.load(opts.topology)
    builds = {f: kernel.build(f, opts.source) for f in dict.fromkeys(v.flavor for v in variants)}
    interface = {f: "CONFIG_REGION_ALLOC_TEST=y" in b.config_path.read_text() for f, b in builds.items()}
    if not any(interface.values()) and not opts.pfbench:
        raise UserError("no variant has the allocation test interface and pfbench is off: nothing to measure")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rh-cost-") as tmp:
        for rep in range(1, opts.repeat + 1):
            for v in variants:
                progress(f"cost: {v} repeat {rep}/{opts.repeat} on {topo.name}")
                workdir = Path(tmp) / f"{v}-r{rep}"
                with guest(builds[v.flavor].bzimage, topo, workdir, append=v.append, accel="tcg",
                           qemu_extra=ICOUNT_ARGS, boot_timeout=600, name=f"cost-{v}") as vm:
                    for row in _measure(vm, opts.orders, interface[v.flavor], opts.pfbench):
                        rows.append({"variant": str(v), "repeat": rep, **row})
    table = pd.DataFrame(rows, columns=["variant", "repeat", "measure", "path", "order", "vns", "split_from"])
    if opts.out is not None:
        write_csv(Path(opts.out) / "cost.csv", table)
    return table


def _split_orders(grp: pd.DataFrame) -> tuple[int, ...]:
    """The orders a measure's allocations split from, over its repeats (none known: ())."""
    if "split_from" not in grp:
        return ()
    return tuple(sorted({int(x) for x in grp["split_from"].tolist() if not math.isnan(x)}))


def summarize(table: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Per (measure, variant): median, spread of the repeats, the orders split from, and the ratio
    to the first variant that has it (NaN where the two split blocks of different orders)."""
    out = []
    for (measure, path, order), grp in table.groupby(["measure", "path", "order"], sort=False):
        first = None
        for v in variants:
            mine = grp[grp["variant"] == v]
            vals = mine["vns"].tolist()
            if not vals:
                continue
            med, split = statistics.median(vals), _split_orders(mine)
            first = (med, split) if first is None else first
            spread = (max(vals) - min(vals)) / med if med else 0.0
            same_path = len(split) <= 1 and split == first[1]
            out.append({"measure": measure, "path": path, "order": order, "variant": v, "n": len(vals),
                        "median_vns": med, "spread": spread, "deterministic": spread <= DETERMINISM,
                        "split_from": ",".join(map(str, split)),
                        "ratio": med / first[0] if first[0] and same_path else math.nan})
    return pd.DataFrame(out)


def render(summary: pd.DataFrame, variants: Sequence[str]) -> str:
    rows: list[tuple[object, ...]] = [("measure", "path", *variants)]
    for (measure, path), grp in summary.groupby(["measure", "path"], sort=False):
        cells = []
        for v in variants:
            r = grp[grp["variant"] == v]
            if r.empty:
                cells.append("-")
                continue
            x = r.iloc[0]
            flag = "" if x["deterministic"] else f" NOT DETERMINISTIC (repeats differ {x['spread']:.2%})"
            where = f" from {x['split_from']}" if x["split_from"] else ""
            ratio = "different split" if math.isnan(x["ratio"]) else f"{x['ratio']:.3f}x"
            cells.append(f"{x['median_vns']:.0f}{where} ({ratio}){flag}")
        rows.append((measure, path, *cells))
    return UNIT_NOTE + "; ratio to the first variant\n" + render_table(rows, right=set(range(2, 2 + len(variants))))
