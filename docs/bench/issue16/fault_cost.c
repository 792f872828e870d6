/*
 * What a page fault costs on this machine: the first store into each page
 * of a 64 MiB shared mapping of a new /dev/shm file, the same after mapping
 * it again (the pages exist, only the mapping faults), and the first store
 * into each page of 64 MiB of anonymous memory (issue 16: a fresh process's
 * first inserts fault in the image's pages and V8's heap).
 *
 *   gcc -O2 -o /tmp/fault_cost docs/bench/issue16/fault_cost.c && /tmp/fault_cost
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Store into every page of `p` once: microseconds per page. */
static double touch(volatile char *p, size_t size, char value)
{
	double t0 = now();
	for (size_t o = 0; o < size; o += 4096)
		p[o] = value;
	return (now() - t0) / 1e3 / (size / 4096);
}

int main(void)
{
	const char *path = "/dev/shm/twz-fault-cost";
	const size_t size = 64 << 20;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, size) != 0) {
		perror(path);
		return 1;
	}
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || a == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("/dev/shm, first touch: %.2f us per page\n", touch(p, size, 1));
	munmap(p, size);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("/dev/shm, mapped again (pages present): %.2f us per page\n", touch(p, size, 2));
	printf("anonymous, first touch: %.2f us per page\n", touch(a, size, 1));
	munmap(p, size);
	munmap(a, size);
	close(fd);
	unlink(path);
	return 0;
}
