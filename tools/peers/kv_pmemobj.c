/*
 * kv_pmemobj.c -- the KV workload of docs/BENCHMARKS.md on PMDK's libpmemobj,
 * as a C baseline for `twz bench kv-insert` / `kv-get`.
 *
 * K inserts of 8-byte keys and 16-byte values into a chained hash map, one
 * transaction per insert (pmemobj_tx_add_range on the bucket and the counter,
 * pmemobj_tx_alloc for the entry), then K lookups.
 *
 * usage: kv_pmemobj DIR [K]
 * env:   PMEM_IS_PMEM_FORCE=1 -> cache-line flush + fence; 0 -> msync
 */
#include <libpmemobj.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct kv_entry {
	uint64_t key;
	uint8_t value[16];
	PMEMoid next;
};

struct kv_root {
	uint64_t count;
	uint64_t nbuckets;
	PMEMoid buckets; /* PMEMoid[nbuckets] */
};

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/dev/shm";
	uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 100000;
	char path[4096];
	snprintf(path, sizeof(path), "%s/kv-pmemobj-%d.pool", dir, (int)getpid());
	unlink(path);
	PMEMobjpool *pop = pmemobj_create(path, "twzkv", 512u << 20, 0600);
	if (pop == NULL) {
		fprintf(stderr, "pmemobj_create %s: %s\n", path, pmemobj_errormsg());
		return 1;
	}
	PMEMoid root_oid = pmemobj_root(pop, sizeof(struct kv_root));
	struct kv_root *root = pmemobj_direct(root_oid);
	uint64_t nb = 1;
	while (nb < n)
		nb <<= 1;
	TX_BEGIN(pop) {
		pmemobj_tx_add_range(root_oid, 0, sizeof(*root));
		root->nbuckets = nb;
		root->buckets = pmemobj_tx_zalloc(nb * sizeof(PMEMoid), 2);
	} TX_ONABORT {
		fprintf(stderr, "setup transaction aborted\n");
		return 1;
	} TX_END
	PMEMoid *buckets = pmemobj_direct(root->buckets);
	uint8_t value[16];
	memcpy(value, "value-0123456789", 16);

	double t0 = seconds();
	for (uint64_t k = 0; k < n; k++) {
		uint64_t b = mix(k) & (nb - 1);
		TX_BEGIN(pop) {
			PMEMoid e = pmemobj_tx_alloc(sizeof(struct kv_entry), 1);
			struct kv_entry *p = pmemobj_direct(e);
			p->key = k;
			memcpy(p->value, value, 16);
			p->next = buckets[b];
			pmemobj_tx_add_range_direct(&buckets[b], sizeof(PMEMoid));
			buckets[b] = e;
			pmemobj_tx_add_range_direct(&root->count, sizeof(root->count));
			root->count++;
		} TX_ONABORT {
			fprintf(stderr, "insert %llu aborted\n", (unsigned long long)k);
			return 1;
		} TX_END
	}
	double insert = (double)n / (seconds() - t0);

	uint64_t found = 0, sum = 0;
	t0 = seconds();
	for (uint64_t k = 0; k < n; k++) {
		PMEMoid e = buckets[mix(k) & (nb - 1)];
		while (!OID_IS_NULL(e)) {
			struct kv_entry *p = pmemobj_direct(e);
			if (p->key == k) {
				found++;
				sum += p->value[k & 15];
				break;
			}
			e = p->next;
		}
	}
	double get = (double)n / (seconds() - t0);
	printf("{\"peer\":\"pmemobj\",\"dir\":\"%s\",\"force\":\"%s\",\"ops\":%llu,"
	       "\"insert_ops_per_sec\":%.0f,\"get_ops_per_sec\":%.0f,\"found\":%llu,\"sum\":%llu}\n",
	       dir, getenv("PMEM_IS_PMEM_FORCE") ? getenv("PMEM_IS_PMEM_FORCE") : "",
	       (unsigned long long)n, insert, get, (unsigned long long)found,
	       (unsigned long long)sum);
	pmemobj_close(pop);
	unlink(path);
	return found == n ? 0 : 1;
}
