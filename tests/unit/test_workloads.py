"""Workload commands rendered per topology: one bound stressor per node with memory."""

import re
import subprocess

import pytest

from harness import topology, workloads
from harness.errors import UserError


def test_one_stressor_per_node_sized_from_the_node():
    cmd = workloads.get("stress").command(topology.load("four-node"), 10)
    jobs = re.findall(r"numactl (--membind=(\d+)(?: --cpunodebind=\d+)?) stress-ng --vm 1 --vm-bytes (\d+)M", cmd)
    assert [int(n) for _, n, _ in jobs] == [0, 1, 2, 3]
    sizes = {int(n): int(mb) for _, n, mb in jobs}
    topo = topology.load("four-node")
    assert sizes == {n.id: n.memory_bytes // 4 >> 20 for n in topo.nodes}
    assert "--timeout 10s" in cmd and cmd.endswith("exit $rc")


def test_memoryless_and_cpuless_nodes():
    topo = topology.load("memoryless")
    cmd = workloads.get("stress").command(topo, 5)
    memless = [n.id for n in topo.nodes if not n.ranges]
    cpuless = [n.id for n in topo.nodes if n.ranges and not n.cpus]
    for n in memless:
        assert f"--membind={n}" not in cmd
    for n in cpuless:
        assert f"--membind={n} stress-ng" in cmd   # memory binding only: the node has no CPU


def test_pagecache_variant_and_errors():
    cmd = workloads.get("stress-pagecache").command(topology.load("two-node"), 5)
    assert "dd if=/dev/zero of=/tmp/pagecache" in cmd
    with pytest.raises(UserError, match="unknown workload 'nope'; known: churn, .*stress"):
        workloads.get("nope")
    with pytest.raises(UserError, match="duration must be positive"):
        workloads.get("stress").command(topology.load("two-node"), 0)


def test_churn_is_scaled_to_each_node_and_bound_to_it():
    topo = topology.load("four-node")
    cmd = workloads.get("churn").command(topo, 12)
    jobs = re.findall(r"numactl --membind=(\d+)(?: --cpunodebind=\d+)? churn -t (\d+) -c (\d+) -k 2 -s 12", cmd)
    assert [int(n) for n, _, _ in jobs] == [n.id for n in topo.nodes if n.ranges]
    for node_id, threads, chunk in jobs:
        node = topo.nodes[int(node_id)]
        in_flight = int(threads) * int(chunk) * 2 << 20
        assert 4 <= int(chunk) <= 256
        assert in_flight <= node.memory_bytes * 0.5 + (int(chunk) << 21)   # about half the node


def test_combined_workload_needs_what_its_parts_need():
    wl = workloads.get("churn-pagecache")
    assert wl.needs == {"churn", "numactl"} and wl.per_node
    cmd = wl.command(topology.load("interleaved-small"), 5)
    assert "churn -t" in cmd and "find $d -type f | xargs cat" in cmd


def test_the_compactor_runs_full_compaction_on_a_period_beside_the_churn():
    wl = workloads.get("churn-pagecache-compact")
    cmd = wl.command(topology.load("two-node"), 12)
    assert cmd.count("churn -t") == 2 and "xargs cat" in cmd
    # one compactor for the whole guest (compact_memory compacts every node), failing loudly
    assert cmd.count("echo 1 > /proc/sys/vm/compact_memory || exit 1") == 1
    assert "sleep 5;" in cmd and "+ 12 ))" in cmd and "full compactions" in cmd


def test_hotplug_cycles_blocks_while_stress_allocates(tmp_path):
    cmd = workloads.get("hotplug").command(topology.load("two-node"), 20)
    assert cmd.count("stress-ng --vm 1") == 2 and "/sys/devices/system/memory/memory$b/state" in cmd
    # the offline/online loop itself, run by a real shell on a fake sysfs: memory0 (boot
    # memory) is never touched, memory2 cycles, memory4 is offline and left alone
    for n, state in ((0, "online"), (2, "online"), (4, "offline")):
        (tmp_path / f"memory{n}").mkdir()
        (tmp_path / f"memory{n}" / "state").write_text(state + "\n")
    untouched = {n: (tmp_path / f"memory{n}" / "state").stat().st_mtime_ns for n in (0, 4)}
    loop = workloads.MemoryHotplug("hotplug", "", 2, pause=0.1, sysfs=str(tmp_path))
    # 2 s: the loop ends at a whole second of `date +%s`, which 1 s can leave a moment away
    (job,) = loop.jobs(topology.load("two-node"), 2)
    res = subprocess.run(["sh", "-c", job], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    cycles, refused = map(int, re.fullmatch(r"hotplug: (\d+) offline-online cycles, (\d+) refused or given up\n",
                                            res.stdout).groups())
    assert cycles >= 1 and refused == 0   # a real kernel refuses some: tests/vm/test_hotplug.py
    assert [(tmp_path / f"memory{n}" / "state").read_text().strip() for n in (0, 2, 4)] == \
        ["online", "online", "offline"]
    assert {n: (tmp_path / f"memory{n}" / "state").stat().st_mtime_ns for n in (0, 4)} == untouched
    # no block to offline: a clear error, not a silent success
    empty = workloads.MemoryHotplug("hotplug", "", 2, sysfs=str(tmp_path / "none"))
    res = subprocess.run(["sh", "-c", empty.jobs(topology.load("two-node"), 1)[0]], capture_output=True, text=True)
    assert res.returncode == 1 and "needs MEMORY_HOTPLUG and MEMORY_HOTREMOVE" in res.stderr


def test_a_workload_needing_a_missing_program_names_it():
    from harness.workloads import StressNg

    class Fio(StressNg):
        @property
        def needs(self):
            return frozenset({"fio"})
    with pytest.raises(UserError, match="the guest image has no fio"):
        Fio("fio-writers", "fio writers", 10).command(topology.load("two-node"), 5)


def test_thp_challenge_writes_and_faults_on_every_node_with_memory():
    topo = topology.load("memoryless")   # node1 has no memory, node2 no CPUs
    wl = workloads.get("thp-challenge")
    cmd = wl.command(topo, 7)
    writers = re.findall(r"numactl --membind=(\d+)((?: --cpunodebind=\d+)?) thpchallenge write "
                         r"/mnt/scratch/node(\d+) (\d+) 7", cmd)
    faulters = re.findall(r"numactl --membind=(\d+)((?: --cpunodebind=\d+)?) thpchallenge fault (\d+) 7", cmd)
    assert [(n, c) for n, c, _, _ in writers] == [("0", " --cpunodebind=0"), ("2", "")]
    assert [(n, c) for n, c, _ in faulters] == [("0", " --cpunodebind=0"), ("2", "")]
    for node, _, where, mib in writers:
        # over more than the node's memory, in a directory of its own
        assert where == node and int(mib) << 20 > topo.nodes[int(node)].memory_bytes
    for node, _, mib in faulters:
        assert 0.5 < (int(mib) << 20) / topo.nodes[int(node)].memory_bytes < 1
    # the setup runs first and stops the workload when it fails
    assert cmd.index("/proc/mounts") < cmd.index("pids=''")


def test_thp_challenge_without_its_scratch_disk_says_what_is_missing(tmp_path):
    wl = workloads.ThpChallenge("thp-challenge", "", 5, mountpoint=str(tmp_path / "scratch"))
    res = subprocess.run(["sh", "-c", wl.command(topology.load("one-node"), 1)], capture_output=True, text=True)
    assert res.returncode == 1
    assert f"no scratch disk at {tmp_path / 'scratch'}" in res.stderr and "EXT2_FS" in res.stderr
    assert "thpchallenge" not in res.stderr   # no job started


def test_thpchallenge_helper_writes_its_files_and_faults(tmp_path):
    from harness.guest.image import _compile_helper
    exe = tmp_path / "thpchallenge"
    exe.write_bytes(_compile_helper(tmp_path, "thpchallenge.c"))
    exe.chmod(0o755)
    out = subprocess.run([str(exe), "write", str(tmp_path), "16", "0.2"], capture_output=True, text=True,
                         check=True).stdout
    written = int(re.fullmatch(r"thpchallenge write mib=16 seconds=0 written_mib=(\d+)\n", out)[1])
    files = sorted(tmp_path.glob("thpchallenge-*"))
    assert len(files) == 8 and all(f.stat().st_size == 2 << 20 for f in files) and written > 0
    out = subprocess.run([str(exe), "fault", "8", "0.2"], capture_output=True, text=True, check=True).stdout
    rounds, faults = map(int, re.fullmatch(r"thpchallenge fault mib=8 seconds=0 rounds=(\d+) faults=(\d+) "
                                           r"huge_pages=\d+\n", out).groups())
    assert rounds >= 1 and faults >= 4 * rounds - 4   # one touch per 2 MiB, the last round may be cut
    bad = subprocess.run([str(exe), "fault", "1", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "less than one huge page" in bad.stderr


def _kinds(wl: workloads.Workload) -> set[type]:
    """The Workload classes a workload runs: its own, or its parts' when it joins others."""
    if isinstance(wl, workloads.Together):
        return set().union(*(_kinds(p) for p in wl.parts))
    return {type(wl)}


def test_the_nightly_debug_run_covers_every_kind_of_workload():
    from pathlib import Path
    script = (Path(__file__).resolve().parents[2] / "ci" / "nightly.sh").read_text()
    listed = re.search(r"RH_STRESS_WORKLOADS=\$\{RH_STRESS_WORKLOADS:-([\w,-]+)\}", script)[1].split(",")
    ran = set().union(*(_kinds(workloads.get(n)) for n in listed))
    every = set().union(*(_kinds(w) for w in workloads.WORKLOADS.values()))
    missing = sorted(k.__name__ for k in every - ran)
    assert not missing, f"ci/nightly.sh's RH_STRESS_WORKLOADS runs no workload of kind {missing}"
