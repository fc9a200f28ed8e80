I=/sys/kernel/tracing/instances/cap; C=/sys/kernel/debug/region_alloc_test/control
mkdir $I && echo 8192 > $I/buffer_size_kb
for e in deposit withdraw return; do echo 1 > $I/events/kmem/mm_region_bank_$e/enable; done
echo 'alloc nid=1 order=10 count=300 mt=movable drain=0' > $C; head -c 200 $C | head -2
echo free > $C; cat $C
for e in deposit withdraw return; do echo 0 > $I/events/kmem/mm_region_bank_$e/enable; done
echo @@BANK; cat $I/trace
rmdir $I; mkdir $I && echo 8192 > $I/buffer_size_kb
mkdir -p /mnt/t && mount -t tmpfs none /mnt/t
numactl --membind=1 sh -c 'for i in $(seq 2000); do printf x > /mnt/t/h$i; done'; rm -f /mnt/t/h*[02468]
E=$I/events/compaction/mm_compaction_isolate_freepages
echo 'nr_taken > 0' > $E/filter; echo 1 > $E/enable
echo 1 > /proc/sys/vm/compact_memory
echo 0 > $E/enable
echo @@COMPACTION; cat $I/trace
grep ^region_bank /proc/vmstat
