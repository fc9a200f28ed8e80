// rh-seed: credit the kernel's entropy pool from a file the host put in the initramfs.
//
// A guest under TCG has no RDRAND and no virtio-rng in a tinyconfig kernel, so the
// crng would take seconds to initialise and dropbear waits for it. The host writes
// fresh random bytes into each run's initramfs; crediting them (RNDADDENTROPY) makes
// the crng ready at once. Test VMs only: the seed travels in the initrd file.
//
// usage: rh-seed FILE
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct {
		struct rand_pool_info info;
		unsigned char buf[512];
	} pool;
	ssize_t n;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	n = read(fd, pool.buf, sizeof(pool.buf));
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "%s: empty seed\n", argv[1]);
		return 1;
	}
	pool.info.entropy_count = (int)n * 8;
	pool.info.buf_size = (int)n;
	fd = open("/dev/urandom", O_RDWR);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &pool) != 0) {
		perror("RNDADDENTROPY");
		return 1;
	}
	close(fd);
	return 0;
}
