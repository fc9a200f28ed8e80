"""A few movable pages in a fresh high region: the scenario the evacuation and compaction
tests share (kernel-patches 0009 and 0010).

In a node's top zone (the one its user allocations take first) the test interface holds
every free movable block outside the zone's highest run of wholly free regions, and the
run's lowest region too (room below for what comes next); a process then writes a small
file into tmpfs, whose pages can only come from a fresh region of the run. Freeing the
hold afterwards is the free half of the evacuation handshake.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from harness.metrics import parse_mem_regions
from harness.metrics.region_alloc_test import CONTROL
from harness.metrics.vmstat import parse_name_values

REGIONS = "/sys/kernel/debug/mem_regions/regions"
#: the file the process writes: well under the evacuation threshold
FILE_PAGES = 16
MNT = "/mnt/evac"
FILE = f"{MNT}/f"
ZONE_ORDER = ["DMA", "DMA32", "Normal", "Movable"]


def regions(vm) -> pd.DataFrame:
    """The guest's debugfs regions, read after draining the per-cpu lists."""
    out = vm.run(f"echo drain > {CONTROL} && cat {REGIONS}", check=True).stdout
    return parse_mem_regions(out, "regions")


def vmstat(vm, names: tuple[str, ...] = ()) -> dict[str, int]:
    """The guest's /proc/vmstat counters (only `names` when given), through the harness parser."""
    values = parse_name_values(vm.run("cat /proc/vmstat", check=True).stdout, "/proc/vmstat")
    return {n: values[n] for n in names} if names else values


def region_events(vm) -> dict[str, int]:
    """The series' region_* vm events."""
    return {k: v for k, v in vmstat(vm).items() if k.startswith("region_")}


OUTCOMES = ("skipped", "success", "fail", "busy", "abort")


def settle(vm, seconds: float = 30) -> None:
    """Wait until kcompactd has no evacuation under way (every queued region ended one way)
    on two reads half a second apart: the allocation half notes no region while one runs."""
    outcomes = " + ".join(f"$(v region_evac_{k})" for k in OUTCOMES)
    vm.run("v() { grep \"^$1 \" /proc/vmstat | cut -d' ' -f2; }; quiet=0; "
           f"for i in $(seq {int(seconds * 2)}); do "
           f"if [ $(v region_evac_queued) -eq $(( {outcomes} )) ]; then quiet=$((quiet+1)); else quiet=0; fi; "
           "[ $quiet -ge 2 ] && exit 0; sleep 0.5; done; echo 'kcompactd kept evacuating' >&2; exit 1",
           check=True, timeout=seconds + 60)


def in_use(z: pd.DataFrame) -> pd.Series:
    """Pages in use per region of one zone's frame."""
    return z["present"] - z["free"]


def target_zone(frame: pd.DataFrame, node: int | None = None) -> tuple[int, str]:
    """(node, zone): the highest zone of the node with the most banked regions among the
    nodes (or of `node`, when given)."""
    best = None
    for nid, nf in frame.groupby(level="node"):
        if node is not None and nid != node:
            continue
        zones = sorted(set(nf.index.get_level_values("zone")), key=ZONE_ORDER.index)
        zone = zones[-1]
        banked = int(nf.xs(zone, level="zone")["banked"].sum())
        if best is None or banked > best[2]:
            best = (int(nid), zone, banked)
    assert best and best[2] >= 2, f"no top zone (of node {node}) has 2 banked regions:\n{frame}"
    return best[0], best[1]


def _free_run(z: pd.DataFrame) -> tuple[int, int]:
    """(first, last) region of the zone's highest run of wholly free regions, at least 2 long."""
    whole = ((z["free"] == z["present"]) & (z["present"] > 0)).tolist()
    last = len(whole) - 1
    while last >= 0:
        if whole[last]:
            first = last
            while first > 0 and whole[first - 1]:
                first -= 1
            if last - first >= 1:
                return first, last
            last = first
        last -= 1
    raise AssertionError(f"no two adjacent wholly free regions:\n{z}")


def _hold_around_then_write(node: int, windows: list[tuple[int, int]], pages: int) -> str:
    """One guest command: hold every free movable block in each [low, high) window through
    the test interface, largest first, each request after draining the per-cpu lists (a
    parked page outside the free run would take the writer's first allocation); then
    write the file and print its digest. One command, so that no process of the test
    exits in between and frees pages outside the run."""
    holds = "; ".join(
        f"for o in 10 9 8 7 6 5 4 3 2 1 0; do n=0; "
        f"while echo 'alloc nid={node} order='$o' count=1 mt=movable low_pfn={low} high_pfn={high}' "
        f"> {CONTROL} 2>/dev/null; do n=$((n+1)); done; echo held order $o: $n; done"
        for low, high in windows)
    return (f"{holds}; numactl --membind={node} dd if=/dev/urandom of={FILE} bs=4096 count={pages} "
            f"2>/dev/null && md5sum {FILE}")


@dataclass(frozen=True)
class Placed:
    node: int
    zone: str
    #: md5 of the file as written
    digest: str
    #: the zone's regions while the hold was in place, the file written
    held: pd.DataFrame
    #: the free run's regions the file's pages went to
    fresh: list[int]


#: placements tried before the scenario gives up (see file_in_a_fresh_region)
ATTEMPTS = 3


@contextmanager
def file_in_a_fresh_region(vm, node: int | None = None,
                           usable: Callable[[pd.DataFrame, int], bool] | None = None,
                           pages: int = FILE_PAGES) -> Iterator[Placed]:
    """Write FILE (`pages` long) into a fresh region of the top zone's highest free run (of `node`, or of
    the node target_zone picks); the hold is freed on leaving the block, whatever happens
    inside it.

    Pages freed onto a per-cpu list after the hold's last drain (the guest's own frees,
    RCU callbacks) come from outside the run, and the writer takes those first: in CI a
    debug guest on four-node once wrote all of the file there. Such a placement is undone
    and tried again, up to ATTEMPTS times; so is one where no fresh region is
    usable(held frame, region) when the caller asks for more (with every movable block held,
    the guest's own unmovable allocations may claim a pageblock of the run)."""
    vm.run(f"mkdir -p {MNT} && (grep -q ' {MNT} ' /proc/mounts || mount -t tmpfs none {MNT})", check=True)
    for _ in range(ATTEMPTS):
        frame = regions(vm)
        nid, zone = target_zone(frame, node)
        z = frame.xs((nid, zone), level=("node", "zone"))
        held_free, last = _free_run(z)
        first = held_free + 1
        run_start, run_end = int(z.loc[first, "start_pfn"]), int(z.loc[last, "end_pfn"])
        windows = [(lo, hi) for lo, hi in ((int(z["start_pfn"].iloc[0]), run_start),
                                           (run_end, int(z["end_pfn"].iloc[-1]))) if lo < hi]
        try:
            out = vm.run(_hold_around_then_write(nid, windows, pages), check=True, timeout=900).stdout
            held = sum(int(n) for n in re.findall(r"held order \d+: (\d+)", out))
            assert held > 0, out
            used = regions(vm).xs((nid, zone), level=("node", "zone"))
        except BaseException:
            vm.run(f"echo free > {CONTROL}", check=True)
            raise
        fresh = [r for r in range(first, last + 1)
                 if z.loc[r, "free"] == z.loc[r, "present"] > used.loc[r, "free"]]
        if fresh and (usable is None or any(usable(used, r) for r in fresh)):
            break
        vm.run(f"echo free > {CONTROL} && rm -f {FILE}", check=True)
    else:
        raise AssertionError(f"in {ATTEMPTS} placements the writer's pages went to no (usable) region of "
                             f"the free run {first}-{last}; the last, fresh {fresh}:\n{used}")
    try:
        yield Placed(nid, zone, out.split()[-2], used, fresh)
    finally:
        vm.run(f"echo free > {CONTROL}", check=True)
