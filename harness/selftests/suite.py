"""Which kernel selftests the harness runs, how, and why the others are left out.

SELFTESTS is the one registry of this extension point: a name (a row of the result
table) -> how to run it. DEFAULT is the set `harness selftests` runs when --tests is
not given: what fits a TCG guest of 1-2 GiB in about a minute and touches the page
allocator (compaction, migration, THP, hugetlb, KSM, memory hotplug). LEFT_OUT says for
every other program of tools/testing/selftests/mm why it is not in the registry, so
"why is X not run" has an answer in the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class Selftest:
    name: str
    #: the program, relative to tools/testing/selftests (built, or a script copied)
    program: str
    args: tuple[str, ...] = ()
    #: what the test covers that an allocator change can break
    why: str = ""
    #: huge pages reserved in /proc/sys/vm/nr_hugepages for the test (restored after it)
    hugepages: int = 0
    #: nodes with memory the test needs; on fewer it is a skip, with that reason
    min_nodes: int = 1
    #: CPUs the test needs (migration: a thread per CPU but one); on fewer, a skip
    min_cpus: int = 1
    #: CONFIG_ options the test needs; without them it is a skip, with that reason
    needs_config: tuple[str, ...] = ()
    #: seconds before the harness kills it (a timeout is a failure)
    timeout: float = 180.0
    #: runs after a failure, in the same guest, before it counts as failed (None: --retries);
    #: more for a test measured to fail now and then on every kernel
    retries: int | None = None

    @property
    def is_script(self) -> bool:
        return self.program.endswith(".sh")

    def command(self) -> str:
        """The guest command line, relative to the directory the programs are unpacked in."""
        return " ".join([f"./{self.program}", *self.args])


_TESTS = (
    Selftest("compaction_test", "mm/compaction_test",
             why="fills memory, frees every other page, then asks for huge pages: compaction against "
                 "the free lists", timeout=300),
    Selftest("migration_thp", "mm/migration", ("-t", "private_anon_thp"),
             why="move_pages() of a THP between nodes for 20 s while threads touch it: the target is "
                 "allocated on the other node",
             min_nodes=2, min_cpus=3, needs_config=("CONFIG_MIGRATION", "CONFIG_TRANSPARENT_HUGEPAGE")),
    Selftest("transhuge-stress", "mm/transhuge-stress", ("-d", "5"),
             why="5 s of THP faults and MADV_DONTNEED frees: pageblock-order allocations and merges",
             needs_config=("CONFIG_TRANSPARENT_HUGEPAGE",)),
    Selftest("cow", "mm/cow",
             why="copy-on-write of small pages, THPs and hugetlb pages after fork()", hugepages=8),
    Selftest("hugepage-mmap", "mm/hugepage-mmap",
             why="a hugetlbfs mapping from the huge page pool", hugepages=128,
             needs_config=("CONFIG_HUGETLBFS",)),
    Selftest("map_hugetlb", "mm/map_hugetlb",
             why="MAP_HUGETLB anonymous mapping from the pool", hugepages=128,
             needs_config=("CONFIG_HUGETLBFS",)),
    Selftest("hugetlb-madvise", "mm/hugetlb-madvise",
             why="madvise() on hugetlb mappings returns pages to the pool", hugepages=128,
             needs_config=("CONFIG_HUGETLBFS",)),
    Selftest("madv_populate", "mm/madv_populate",
             why="MADV_POPULATE_READ/WRITE fault in ranges at once"),
    Selftest("ksm_merge", "mm/ksm_tests", ("-M", "-p", "10"),
             why="KSM merges identical pages and frees the duplicates", needs_config=("CONFIG_KSM",)),
    # failed 9 of 24 runs on interleaved-small under TCG, on both kernels (vanilla 5 of 12,
    # regions 4 of 12): its merge count races with ksmd. Eight attempts take a second;
    # all eight fail by chance 0.375^8 = 0.04% of the time
    Selftest("ksm_numa_merge", "mm/ksm_tests", ("-N", "-m", "1"),
             why="KSM merges pages across nodes (merge_across_nodes=1)",
             min_nodes=2, needs_config=("CONFIG_KSM",), retries=7),
    Selftest("ksm_numa_no_merge", "mm/ksm_tests", ("-N", "-m", "0"),
             why="KSM keeps pages of different nodes apart (merge_across_nodes=0)",
             min_nodes=2, needs_config=("CONFIG_KSM",)),
    Selftest("ksm_functional_tests", "mm/ksm_functional_tests",
             why="KSM unmerge, zero pages, fork", needs_config=("CONFIG_KSM",)),
    Selftest("mem-on-off-test", "memory-hotplug/mem-on-off-test.sh", ("-r", "10"),
             why="offlines and onlines 10% of the hot-removable memory blocks: pages migrated away, "
                 "blocks isolated and given back to the buddy",
             needs_config=("CONFIG_MEMORY_HOTREMOVE",)),
)

SELFTESTS: dict[str, Selftest] = {t.name: t for t in _TESTS}
#: in the registry, out of the default set: the nightly runs them (--tests all)
NIGHTLY_ONLY = {
    "ksm_functional_tests": "20 s waiting for KSM's scanner under TCG; ksm_merge covers merging",
}
DEFAULT: tuple[str, ...] = tuple(n for n in SELFTESTS if n not in NIGHTLY_ONLY)

#: programs of tools/testing/selftests/mm (6.12) not in SELFTESTS, and why
LEFT_OUT: dict[str, str] = {
    "split_huge_page_test": "writes a 4 MiB file one byte per write() nine times: over 3 minutes under "
                            "TCG, and /tmp's tmpfs makes no large folios, so those nine are skips anyway",
    "khugepaged": "does not build in 6.12.117 (KSFT_SKIP undeclared in khugepaged.c); runs for minutes",
    "migration (other subtests)": "20 s of wall time each (RUNTIME is compiled in); the THP one stands for them",
    "uffd-unit-tests, uffd-stress, pagemap_ioctl": "need CONFIG_USERFAULTFD; userfaultfd is not the allocator",
    "hmm-tests": "needs the test_hmm module; guests boot without modules",
    "gup_test": "needs CONFIG_GUP_TEST, a debugfs test module not in the base config",
    "gup_longterm": "its io_uring cases need CONFIG_IO_URING; pins are not the allocator",
    "hugepage-shm, thuge-gen": "need CONFIG_SYSVIPC (shmget); thuge-gen also needs 1 GiB pages",
    "hugepage-mremap, hugepage-vmemmap": "need a hugetlbfs mount or CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP",
    "hugetlb-read-hwpoison, hugetlb-soft-offline": "need CONFIG_MEMORY_FAILURE",
    "mremap_test": "maps GiBs at once: ENOMEM in a 1-2 GiB guest on every kernel",
    "virtual_address_range, va_high_addr_switch": "reserve the whole address space; minutes under TCG",
    "protection_keys, pkey_sighandler_tests": "need protection keys in the CPU; QEMU's TCG models lack them",
    "memfd_secret": "needs secretmem enabled on the command line",
    "soft-dirty": "needs CONFIG_MEM_SOFT_DIRTY (CHECKPOINT_RESTORE)",
    "mlock2-tests, mlock-random-test, on-fault-limit, mseal_test, seal_elf, mdwe_test":
        "mlock, sealing and W^X of mappings: nothing the page allocator decides",
    "map_fixed_noreplace, map_populate, mrelease_test, mremap_dontunmap, mkdirty, droppable, "
    "hugetlb_fault_after_madv, hugetlb_madv_vs_map, hugetlb_dio":
        "page-table and VMA semantics, covered as well by the tests above; left out to keep a guest "
        "near a minute",
}


def select(names: Iterable[str] | None) -> tuple[Selftest, ...]:
    """The tests --tests names (default: DEFAULT; "all": the registry), in registry order.

    An unknown name is an error naming it.
    """
    wanted = tuple(names) if names is not None else DEFAULT
    if wanted == ("all",):
        wanted = tuple(SELFTESTS)
    unknown = [n for n in wanted if n not in SELFTESTS]
    if unknown:
        raise UserError(f"--tests: unknown selftest {', '.join(unknown)}; known: {', '.join(SELFTESTS)}")
    if not wanted:
        raise UserError("--tests: give at least one selftest, e.g. --tests compaction_test")
    return tuple(t for t in _TESTS if t.name in wanted)


def programs(tests: Iterable[Selftest]) -> tuple[str, ...]:
    """The distinct programs of tests, registry order: what the build makes and the guest receives."""
    return tuple(dict.fromkeys(t.program for t in tests))


def skip_reason(test: Selftest, nodes: int, cpus: int, config: dict[str, str]) -> str | None:
    """Why the test cannot run on this guest (too few nodes or CPUs, a config option off), or None.

    config: the kernel's .config as {name without CONFIG_: value}.
    """
    if nodes < test.min_nodes:
        return f"needs {test.min_nodes} nodes with memory, the guest has {nodes}"
    if cpus < test.min_cpus:
        return f"needs {test.min_cpus} CPUs, the guest has {cpus}"
    off = [opt for opt in test.needs_config if config.get(opt.removeprefix("CONFIG_"), "n") not in ("y", "m")]
    if off:
        return f"needs {', '.join(off)}, not set in the kernel's .config"
    return None
