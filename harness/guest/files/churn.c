// churn: threads that allocate, touch and free large chunks of anonymous memory, over and over.
//
// The shape of the original region series' experiment (ebizzy with large chunks and many
// threads per instance), written for the guest image because ebizzy is not packaged:
// each thread maps a chunk, writes every page (so the kernel really allocates it),
// keeps it for a while, and unmaps it, until the time is up. Chunks come and go in a
// staggered way, so the allocator sees a changing mix of used and free memory.
//
// usage: churn [-t threads] [-c chunk MiB] [-s seconds] [-k chunks kept per thread]
// prints: churn threads=T chunk_mib=C seconds=S rounds=R
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static size_t chunk_bytes;
static unsigned long keep = 2;
static double stop_at;
static unsigned long rounds_total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char **held = calloc(keep, sizeof(*held));
	unsigned long rounds = 0, slot = (uintptr_t)arg % keep;

	if (!held)
		return NULL;
	while (now() < stop_at) {
		if (held[slot])
			munmap(held[slot], chunk_bytes);
		held[slot] = mmap(NULL, chunk_bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (held[slot] == MAP_FAILED) {
			held[slot] = NULL;	// memory is short right now: try again later
			usleep(10000);
			continue;
		}
		for (size_t off = 0; off < chunk_bytes; off += page)
			held[slot][off] = (char)rounds;
		slot = (slot + 1) % keep;
		rounds++;
	}
	for (unsigned long i = 0; i < keep; i++)
		if (held[i])
			munmap(held[i], chunk_bytes);
	free(held);
	pthread_mutex_lock(&lock);
	rounds_total += rounds;
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long threads = 4, chunk_mib = 16, seconds = 10;
	int opt;

	while ((opt = getopt(argc, argv, "t:c:s:k:")) != -1) {
		switch (opt) {
		case 't': threads = strtoul(optarg, NULL, 0); break;
		case 'c': chunk_mib = strtoul(optarg, NULL, 0); break;
		case 's': seconds = strtoul(optarg, NULL, 0); break;
		case 'k': keep = strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s [-t threads] [-c chunk MiB] [-s seconds] [-k kept]\n", argv[0]);
			return 2;
		}
	}
	if (!threads || !chunk_mib || !seconds || !keep || threads > 1024) {
		fprintf(stderr, "churn: threads, chunk, seconds and kept must be positive\n");
		return 2;
	}
	chunk_bytes = chunk_mib << 20;
	stop_at = now() + seconds;
	pthread_t *tids = calloc(threads, sizeof(*tids));

	if (!tids)
		return 1;
	for (unsigned long i = 0; i < threads; i++)
		if (pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)i)) {
			perror("pthread_create");
			return 1;
		}
	for (unsigned long i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	printf("churn threads=%lu chunk_mib=%lu seconds=%lu rounds=%lu\n",
	       threads, chunk_mib, seconds, rounds_total);
	return 0;
}
