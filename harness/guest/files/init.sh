#!/bin/sh
# /init of the region-harness guest: mount the kernel filesystems, bring up the
# QEMU user-mode network, start dropbear, then print the ready marker the host
# waits for. Kernel command line options understood here:
#   rh.poweroff=1   run /etc/rh-cmd (if present), then power off at once
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# devtmpfs may already be mounted (CONFIG_DEVTMPFS_MOUNT), hence the quiet failure
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /dev/shm
# a kernel without debugfs/tracefs still boots; the harness reports what is missing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || echo "rh-init: no debugfs"
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || echo "rh-init: no tracefs"
# count fallback allocations (kmem/mm_page_alloc_extfrag) by fallback order from boot on:
# a histogram trigger counts without tracing into a ring buffer, and every snapshot
# reads its hist file (harness/metrics/tracehist.py holds the same trigger)
extfrag=/sys/kernel/tracing/events/kmem/mm_page_alloc_extfrag
if [ -e $extfrag/hist ]; then
    echo 'hist:keys=fallback_order' > $extfrag/trigger || echo "rh-init: no extfrag histogram"
fi

# the scratch disk the harness attaches to every guest (harness/guest/disk.py): room for
# page cache larger than memory, which tmpfs cannot give
if [ -b /dev/vda ]; then
    mkdir -p /mnt/scratch
    mount -t ext2 /dev/vda /mnt/scratch || echo "rh-init: the scratch disk /dev/vda did not mount"
fi

hostname rh-guest

# static address: QEMU user networking always hands out 10.0.2.15, and a DHCP
# round trip would only cost boot time
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
else
    echo "rh-init: no eth0, ssh will not work"
fi

# credit the per-run seed: without RDRAND or virtio-rng the crng needs seconds
# under TCG, and dropbear would wait for it before answering
if [ -f /etc/rh-seed ]; then
    rh-seed /etc/rh-seed && rm -f /etc/rh-seed
fi

# the host key was generated when the image was built, so no boot pays for it;
# -s: keys only, the per-run key arrives in /root/.ssh/authorized_keys
if [ -x /usr/sbin/dropbear ]; then
    /usr/sbin/dropbear -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -s -E 2>/run/dropbear.log
fi

poweroff_after=0
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        rh.poweroff=1) poweroff_after=1 ;;
    esac
done

echo "REGION-HARNESS-READY"

if [ "$poweroff_after" = 1 ]; then
    if [ -x /etc/rh-cmd ]; then
        /etc/rh-cmd
        echo "RH-CMD-EXIT=$?"
    fi
    sync
    poweroff -f
fi

# PID 1 must never exit (that panics the kernel): keep a shell on the console,
# which also gives the host a fallback way in when ssh is broken
while true; do
    setsid cttyhack /bin/sh
    sleep 1
done
