/*
 * chase_pmemobj.c -- the pointer chase of `twz bench ptr-chase` on PMDK's
 * libpmemobj, as a C baseline (tools/peers/README.md).
 *
 * A linked list of 1,024 nodes (a 16-byte payload, four uint32_t, and a
 * PMEMoid next), linked in a shuffled order from the same seeded generator
 * and placement as the twz bench (so the sums agree): (a) in one pool, and
 * (b) over 16 pools, where every hop changes pool. Each node is its own
 * pmemobj_zalloc allocation. The list is walked WALKS times (default 1,000),
 * summing the payload field `a`:
 *
 *   direct  pmemobj_direct() on every hop (the header's inline version,
 *           what a program gets: a one-entry pool cache, then a pool lookup
 *           when the pool changes)
 *   raw     a cached raw pointer to the next node (a volatile field of the
 *           node, filled after the list is written), the C floor
 *
 * Cases are interleaved: 3 warm-up rounds, then ROUNDS rounds (default 5)
 * timing each case once, the order rotated every round; the medians per hop
 * are printed as one JSON line. A wrong sum ends the run with status 1.
 *
 * usage: chase_pmemobj DIR [WALKS] [ROUNDS]
 */
#include <libpmemobj.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODES 1024
#define POOLS 16
#define SEED 16
#define CASES 4

struct node {
	uint32_t a, b, c, d; /* the 16-byte payload; the walks sum a */
	PMEMoid next;
	struct node *vnext; /* volatile: the cached raw pointer of case raw */
};

/* mulberry32, as packages/cli/bench/_chase_list.ts: the same list. */
static uint32_t rng_state;

static double rnd(void)
{
	rng_state += 0x6d2b79f5u;
	uint32_t t = rng_state;
	t = (t ^ (t >> 15)) * (t | 1u);
	t ^= t + (t ^ (t >> 7)) * (t | 61u);
	return (double)(t ^ (t >> 14)) / 4294967296.0;
}

static void shuffled(int *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = i;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)floor(rnd() * (i + 1));
		int t = out[i];
		out[i] = out[j];
		out[j] = t;
	}
}

/* Where list position k lives: pool obj[k], allocation slot[k] of it. */
static void placement(int pools, int *obj, int *slot)
{
	rng_state = SEED;
	int per = NODES / pools, n = 0, block[POOLS];
	while (n < NODES) {
		shuffled(block, pools);
		if (pools > 1 && n > 0 && block[0] == obj[n - 1]) {
			int t = block[0];
			block[0] = block[1];
			block[1] = t;
		}
		for (int i = 0; i < pools; i++)
			obj[n++] = block[i];
	}
	static int slots[POOLS][NODES];
	for (int p = 0; p < pools; p++)
		shuffled(slots[p], per);
	int used[POOLS] = {0};
	for (int k = 0; k < NODES; k++)
		slot[k] = slots[obj[k]][used[obj[k]]++];
}

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static PMEMobjpool *pools_a[1], *pools_b[POOLS];
static char paths[1 + POOLS][4096];

static PMEMobjpool *mkpool(const char *dir, int i)
{
	snprintf(paths[i], sizeof(paths[i]), "%s/chase-pmemobj-%d-%d.pool", dir,
		 (int)getpid(), i);
	unlink(paths[i]);
	PMEMobjpool *pop = pmemobj_create(paths[i], "twzchase", PMEMOBJ_MIN_POOL, 0600);
	if (pop == NULL) {
		fprintf(stderr, "pmemobj_create %s: %s\n", paths[i], pmemobj_errormsg());
		exit(1);
	}
	return pop;
}

/* Write the list over `pools` pools; returns its head. */
static PMEMoid build(PMEMobjpool **pops, int pools, const uint32_t *values)
{
	static int obj[NODES], slot[NODES];
	static PMEMoid alloc[POOLS][NODES];
	placement(pools, obj, slot);
	int per = NODES / pools;
	for (int p = 0; p < pools; p++)
		for (int s = 0; s < per; s++)
			if (pmemobj_zalloc(pops[p], &alloc[p][s], sizeof(struct node), 1)) {
				fprintf(stderr, "pmemobj_zalloc: %s\n", pmemobj_errormsg());
				exit(1);
			}
	for (int k = 0; k < NODES; k++) {
		PMEMoid o = alloc[obj[k]][slot[k]];
		struct node *n = pmemobj_direct(o);
		n->a = values[k];
		n->b = (uint32_t)k;
		n->c = (uint32_t)(NODES - k);
		n->d = 0xc0ffee;
		n->next = k + 1 < NODES ? alloc[obj[k + 1]][slot[k + 1]] : OID_NULL;
		pmemobj_persist(pops[obj[k]], n, sizeof(*n));
	}
	for (int k = 0; k < NODES; k++) {
		struct node *n = pmemobj_direct(alloc[obj[k]][slot[k]]);
		n->vnext = pmemobj_direct(n->next);
	}
	return alloc[obj[0]][slot[0]];
}

static __attribute__((noinline)) uint64_t walk_direct(PMEMoid head, long walks)
{
	uint64_t s = 0;
	for (long w = 0; w < walks; w++)
		for (PMEMoid o = head; !OID_IS_NULL(o);) {
			const struct node *n = pmemobj_direct(o);
			s += n->a;
			o = n->next;
		}
	return s;
}

static __attribute__((noinline)) uint64_t walk_raw(const struct node *head, long walks)
{
	uint64_t s = 0;
	for (long w = 0; w < walks; w++)
		for (const struct node *n = head; n != NULL; n = n->vnext)
			s += n->a;
	return s;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	long walks = argc > 2 ? atol(argv[2]) : 1000;
	int rounds = argc > 3 ? atoi(argv[3]) : 5;
	if (walks <= 0 || rounds <= 0 || rounds > 1000) {
		fprintf(stderr, "usage: chase_pmemobj DIR [WALKS] [ROUNDS]\n");
		return 2;
	}
	uint32_t values[NODES];
	uint64_t one = 0;
	rng_state = SEED ^ 0x5eed;
	for (int k = 0; k < NODES; k++) {
		values[k] = (uint32_t)floor(rnd() * 1024);
		one += values[k];
	}
	uint64_t expect = one * (uint64_t)walks;

	pools_a[0] = mkpool(dir, 0);
	for (int p = 0; p < POOLS; p++)
		pools_b[p] = mkpool(dir, 1 + p);
	PMEMoid head_a = build(pools_a, 1, values);
	PMEMoid head_b = build(pools_b, POOLS, values);
	const struct node *raw_a = pmemobj_direct(head_a), *raw_b = pmemobj_direct(head_b);

	static const char *names[CASES] = {"one_pool_direct", "one_pool_raw",
					   "pools16_direct", "pools16_raw"};
	static double t[CASES][1000];
	int status = 0;
	for (int r = -3; r < rounds; r++) {
		for (int j = 0; j < CASES; j++) {
			int c = (j + (r < 0 ? 0 : r)) % CASES;
			double t0 = seconds();
			uint64_t s = c == 0 ? walk_direct(head_a, walks)
				   : c == 1 ? walk_raw(raw_a, walks)
				   : c == 2 ? walk_direct(head_b, walks)
					    : walk_raw(raw_b, walks);
			double ns = (seconds() - t0) * 1e9 / ((double)walks * NODES);
			if (s != expect) {
				fprintf(stderr, "chase_pmemobj: %s summed %llu, expected %llu\n",
					names[c], (unsigned long long)s,
					(unsigned long long)expect);
				status = 1;
			}
			if (r >= 0)
				t[c][r] = ns;
		}
	}
	printf("{\"peer\":\"chase-pmemobj\",\"dir\":\"%s\",\"nodes\":%d,\"walks\":%ld,"
	       "\"rounds\":%d,\"sum\":%llu",
	       dir, NODES, walks, rounds, (unsigned long long)expect);
	for (int c = 0; c < CASES; c++) {
		qsort(t[c], (size_t)rounds, sizeof(double), cmp);
		double med = rounds % 2 ? t[c][rounds / 2]
					: (t[c][rounds / 2 - 1] + t[c][rounds / 2]) / 2;
		printf(",\"%s_ns_per_hop\":%.3f,\"%s_min_ns\":%.3f,\"%s_max_ns\":%.3f", names[c],
		       med, names[c], t[c][0], names[c], t[c][rounds - 1]);
	}
	printf("}\n");

	pmemobj_close(pools_a[0]);
	for (int p = 0; p < POOLS; p++)
		pmemobj_close(pools_b[p]);
	for (int i = 0; i < 1 + POOLS; i++)
		unlink(paths[i]);
	return status;
}
