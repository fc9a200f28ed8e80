// thpchallenge: the two halves of mmtests' thpchallenge shape, for the guest image.
//
//   thpchallenge write DIR MIB SECONDS [BLOCK_KIB]
//     page-cache writer: FILES of MIB in all (8 files) under DIR, written at random
//     block-aligned offsets with buffered pwrite() until SECONDS have passed. The file
//     set is larger than the guest's memory, so the page cache fills memory and
//     reclaim frees its pages in an order unrelated to where they lie.
//   thpchallenge fault MIB SECONDS
//     THP faulter: maps MIB of anonymous memory with MADV_HUGEPAGE, touches one byte
//     per 2 MiB (each touch is one THP fault: a huge page, or a fallback to small
//     pages counted in /proc/vmstat thp_fault_fallback), unmaps it, and starts again
//     until SECONDS have passed.
//
// fio (the tool mmtests uses for the writers) is not used because Debian's build links
// Ceph, GlusterFS and PMDK libraries, about 32 MiB more in every guest's initramfs.
//
// prints: thpchallenge write mib=M seconds=S written_mib=W
//         thpchallenge fault mib=M seconds=S rounds=R faults=F huge_pages=H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define HUGE (2 * MIB)
#define FILES 8

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

// xorshift64: the writers' offsets need no quality, only no pattern the kernel could follow
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int writer(const char *dir, unsigned long mib, double seconds, unsigned long block_kib)
{
	size_t block = block_kib * 1024, file_bytes = mib * MIB / FILES;
	unsigned long blocks_per_file = file_bytes / block;
	uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	unsigned long long written = 0;
	int fds[FILES];
	char *buf, path[4096];
	double stop_at = now() + seconds;

	if (!blocks_per_file) {
		fprintf(stderr, "thpchallenge write: %lu MiB is less than %d blocks of %lu KiB\n",
			mib, FILES, block_kib);
		return 2;
	}
	buf = malloc(block);
	if (!buf)
		return 1;
	memset(buf, 0x5a, block);
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/thpchallenge-%d", dir, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fds[i] < 0 || ftruncate(fds[i], (off_t)file_bytes) < 0) {
			fprintf(stderr, "thpchallenge write: %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	while (now() < stop_at) {
		// a few hundred writes between clock reads
		for (int n = 0; n < 256; n++) {
			uint64_t r = next_random(&seed);
			int f = (int)(r % FILES);
			off_t off = (off_t)((r >> 8) % blocks_per_file) * (off_t)block;

			if (pwrite(fds[f], buf, block, off) != (ssize_t)block) {
				fprintf(stderr, "thpchallenge write: pwrite: %s\n", strerror(errno));
				return 1;
			}
			written += block;
		}
	}
	for (int i = 0; i < FILES; i++)
		close(fds[i]);
	printf("thpchallenge write mib=%lu seconds=%.0f written_mib=%llu\n", mib, seconds, written / MIB);
	return 0;
}

// AnonHugePages of this process now, in 2 MiB pages
static long huge_pages_now(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib < 0 ? -1 : kib / 2048;
}

static int faulter(unsigned long mib, double seconds)
{
	size_t bytes = (mib * MIB) / HUGE * HUGE;
	unsigned long rounds = 0, faults = 0;
	long huge = 0;
	double stop_at = now() + seconds;

	if (!bytes) {
		fprintf(stderr, "thpchallenge fault: %lu MiB is less than one huge page\n", mib);
		return 2;
	}
	while (now() < stop_at) {
		// map one huge page more, then start at a 2 MiB boundary: every touch can be a THP
		char *raw = mmap(NULL, bytes + HUGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		char *p;
		long got;

		if (raw == MAP_FAILED) {
			usleep(10000);
			continue;
		}
		p = (char *)(((uintptr_t)raw + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
		if (madvise(p, bytes, MADV_HUGEPAGE) != 0) {
			fprintf(stderr, "thpchallenge fault: madvise(MADV_HUGEPAGE): %s "
				"(a kernel without TRANSPARENT_HUGEPAGE?)\n", strerror(errno));
			return 1;
		}
		for (size_t off = 0; off < bytes && now() < stop_at; off += HUGE) {
			p[off] = (char)rounds;
			faults++;
		}
		got = huge_pages_now();
		if (got > 0)
			huge += got;
		munmap(raw, bytes + HUGE);
		rounds++;
	}
	printf("thpchallenge fault mib=%lu seconds=%.0f rounds=%lu faults=%lu huge_pages=%ld\n",
	       mib, seconds, rounds, faults, huge);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: thpchallenge write DIR MIB SECONDS [BLOCK_KIB]\n"
			"       thpchallenge fault MIB SECONDS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 5 && !strcmp(argv[1], "write"))
		return writer(argv[2], strtoul(argv[3], NULL, 10), atof(argv[4]),
			      argc > 5 ? strtoul(argv[5], NULL, 10) : 64);
	if (argc == 4 && !strcmp(argv[1], "fault"))
		return faulter(strtoul(argv[2], NULL, 10), atof(argv[3]));
	usage();
	return 2;
}
