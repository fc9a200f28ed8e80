"""Variants the VM tests boot, shared so that tests on one topology reuse the same guests."""

#: The series' guests boot with 16 MiB regions: a 512 MiB node then has 32 regions, enough
#: for the bank to hold some and give them back, where the kernel's 512M default gives 1.
REGIONS = "regions+mem_region_size=16M"
DEBUG = "debug+mem_region_size=16M"
#: the policies-off baseline: sorting off turns the bank off too
BASELINE = "regions+mem_region_sort=0+mem_region_size=16M"
#: the lower-region bias (patch 0007), booted on one topology only
BIAS = "regions+mem_region_size=16M+mem_region_bias=1"
#: targeted evacuation (patch 0009) on, with a threshold that leaves room for the writer
#: process's own pages next to its file (the kernel's default is 32)
EVACUATE_PAGES = 256
EVACUATE = f"regions+mem_region_size=16M+mem_region_evacuate=1+mem_region_evacuate_pages={EVACUATE_PAGES}"
#: the debug kernel with evacuation on: the stress test's guest (kcompactd's evacuations
#: then run under lockdep and DEBUG_VM with every workload)
DEBUG_EVACUATE = EVACUATE.replace("regions+", "debug+", 1)
#: compaction and drained regions (patch 0010): the lower-region bias keeps the guest's own small
#: allocations out of a sparse region's exact fits, the threshold leaves room for the writer's
#: pages; NO_FILL, compaction free to take targets anywhere, is test_compaction_fill's control
FILL = "regions+mem_region_size=16M+mem_region_bias=1+mem_region_evacuate_pages=256"
NO_FILL = f"{FILL}+mem_region_fill=0"
