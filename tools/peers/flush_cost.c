/*
 * What cache-line flushes and the drain after them cost on this machine
 * (issue 16: a durable commit on persistent memory flushes the lines it
 * wrote and waits for them twice, once for the log and once for the data).
 * Through libpmem's pmem_flush and pmem_drain, the instructions PMDK itself
 * picks here (clwb, clflushopt or clflush: the first line of the output).
 * Every case stores one byte into each line it flushes, on a 64 MiB
 * /dev/shm mapping whose pages are all present before the timing:
 *
 *   store only            a store into a new line each op, nothing flushed
 *   flush+drain, new line a new line each op (a log that moves on)
 *   flush+drain, same line the same line each op (a log header every commit reuses)
 *   4 lines, one drain    four lines stored, flushed, one drain
 *   2 x flush+drain       two rounds of the case above (a commit's two ordering points)
 *   flush, no drain, same the same line, flushed, never drained: the next
 *                         store meets the line's flush still in flight
 *   load after flush      the same-line case with one load of the line first:
 *                         a load of a line the previous op flushed and drained
 *
 *   gcc -O2 -o /tmp/flush_cost tools/peers/flush_cost.c -lpmem && /tmp/flush_cost 200000
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define LINE 64
#define LINES 4096 /* the ring of lines the "new line" cases step through */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

/* The flush libpmem uses: the first of clwb, clflushopt, clflush the CPU has
 * (cpuid leaf 7, EBX bits 24 and 23), unless the environment turns it off. */
static const char *instruction(void)
{
	const char *no_flush = getenv("PMEM_NO_FLUSH");
	if (no_flush && atoi(no_flush) == 1)
		return "none (PMEM_NO_FLUSH=1)";
	unsigned a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
	if ((b >> 24) & 1 && !getenv("PMEM_NO_CLWB"))
		return "clwb";
	if ((b >> 23) & 1 && !getenv("PMEM_NO_CLFLUSHOPT"))
		return "clflushopt";
	return "clflush";
}

int main(int argc, char **argv)
{
	const char *path = "/dev/shm/twz-flush-cost";
	const size_t size = 64 << 20;
	const long n = argc > 1 ? atol(argv[1]) : 200000;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, size) != 0) {
		perror(path);
		return 1;
	}
	volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < size; i += 4096)
		p[i] = 1; /* every page present before the timing */
	printf("flush instruction: %s\n", instruction());
	static const char *names[] = {
		"store only", "flush+drain, new line", "flush+drain, same line",
		"4 lines, one drain", "2 x flush+drain (4 lines, 2 lines)",
		"flush, no drain, same line", "load after flush",
	};
	const int cases = sizeof(names) / sizeof(names[0]);
	uint64_t sink = 0;
	for (int c = 0; c < cases; c++) {
		double t0 = now();
		for (long i = 0; i < n; i++) {
			volatile char *q = p + (size_t)(i % LINES) * 4 * LINE; /* a new line (and 3 after it) */
			switch (c) {
			case 0:
				q[8]++;
				break;
			case 1:
				q[8]++;
				pmem_flush((void *)q, 1);
				pmem_drain();
				break;
			case 2:
				p[8]++;
				pmem_flush((void *)p, 1);
				pmem_drain();
				break;
			case 3:
			case 4:
				for (int k = 0; k < 4; k++)
					q[k * LINE + 8]++;
				pmem_flush((void *)q, 4 * LINE);
				pmem_drain();
				if (c == 4) {
					volatile char *r = p + size / 2 + (size_t)(i % LINES) * 2 * LINE;
					r[8]++;
					r[LINE + 8]++;
					pmem_flush((void *)r, 2 * LINE);
					pmem_drain();
				}
				break;
			case 5:
				p[8]++;
				pmem_flush((void *)p, 1);
				break;
			case 6:
				sink += p[16];
				p[8]++;
				pmem_flush((void *)p, 1);
				pmem_drain();
				break;
			}
		}
		double t1 = now();
		printf("%-36s %7.1f ns per op\n", names[c], (t1 - t0) / n);
	}
	munmap((void *)p, size);
	close(fd);
	unlink(path);
	return sink == 42 ? 1 : 0;
}
