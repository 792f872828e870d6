/*
 * What one msync(MS_SYNC) of a dirty 4 KiB page of a shared /dev/shm mapping
 * costs on this machine, and two per operation (issue 16: a durable commit's
 * two ordering points on page-granular media). N operations each dirty one
 * byte of a page (two pages) and msync it (them).
 *
 *   gcc -O2 -o /tmp/msync_cost tools/peers/msync_cost.c && /tmp/msync_cost 200000
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	const char *path = "/dev/shm/twz-msync-cost";
	const size_t size = 64 << 20;
	const long n = argc > 1 ? atol(argv[1]) : 100000;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, size) != 0) {
		perror(path);
		return 1;
	}
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < size; i += 4096)
		p[i] = 1; /* every page present before the timing */
	double t0 = now();
	for (long i = 0; i < n; i++) {
		size_t a = (size_t)i * 4096 * 7 % size;
		p[a]++;
		msync(p + a, 4096, MS_SYNC);
	}
	double t1 = now();
	for (long i = 0; i < n; i++) {
		size_t a = (size_t)i * 4096 * 7 % size, b = (a + 8192 * 3) % size;
		p[a]++;
		p[b]++;
		msync(p + a, 4096, MS_SYNC);
		msync(p + b, 4096, MS_SYNC);
	}
	double t2 = now();
	printf("one msync per op: %.2f us; two msyncs per op: %.2f us\n", (t1 - t0) / n * 1e6,
	       (t2 - t1) / n * 1e6);
	munmap(p, size);
	close(fd);
	unlink(path);
	return 0;
}
