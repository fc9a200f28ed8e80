// pfbench: user-space page allocation + free cost, measured through page faults.
//
// Maps N MiB of anonymous memory, touches it (one fault per 4 KiB page, order 0,
// or with MADV_HUGEPAGE one fault per 2 MiB, order 9), unmaps it, R times, and
// prints the mean cost of one fault including its share of the munmap (the free).
// Only plain syscalls, so it runs on any kernel; built static for the initramfs.
//
// usage: pfbench [-m MiB] [-r repeats] [-o 0|9]
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define HPAGE (2UL << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-m MiB] [-r repeats] [-o 0|9]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long mib = 64, reps = 10, order = 0;
	int opt;

	while ((opt = getopt(argc, argv, "m:r:o:")) != -1) {
		switch (opt) {
		case 'm': mib = strtoul(optarg, NULL, 0); break;
		case 'r': reps = strtoul(optarg, NULL, 0); break;
		case 'o': order = strtoul(optarg, NULL, 0); break;
		default: usage(argv[0]);
		}
	}
	if (mib == 0 || reps == 0 || (order != 0 && order != 9))
		usage(argv[0]);

	size_t len = mib << 20;
	size_t step = order == 9 ? HPAGE : (size_t)sysconf(_SC_PAGESIZE);
	unsigned long faults = 0;
	uint64_t total = 0;

	for (unsigned long r = 0; r < reps; r++) {
		// over-allocate by 2 MiB so the THP case can start on a huge page boundary
		size_t maplen = len + HPAGE;
		char *map = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		char *p = (char *)(((uintptr_t)map + HPAGE - 1) & ~(HPAGE - 1));
		// THP may be "always": order 0 must opt out explicitly to stay order 0
		if (madvise(p, len, order == 9 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
			perror("madvise");	// still measures something; said on stderr

		uint64_t t0 = now_ns();
		for (size_t off = 0; off < len; off += step) {
			p[off] = 1;
			faults++;
		}
		munmap(map, maplen);
		total += now_ns() - t0;
	}
	printf("pfbench order=%lu pages=%lu ns_per_fault=%.1f\n",
	       order, faults, (double)total / (double)faults);
	return 0;
}
