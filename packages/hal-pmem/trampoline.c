/*
 * hal-pmem trampoline.
 *
 * libpmem2 hands out its flush, drain and persist routines as function
 * pointers (pmem2_get_persist_fn and friends). Deno can call a function
 * pointer only through Deno.UnsafeFnPointer, which costs microseconds per
 * call; a plain exported symbol opened with Deno.dlopen takes the fast-call
 * path (nanoseconds). These exports take the pointer libpmem2 gave us and
 * call it, so every persist costs one fast FFI call plus libpmem2's own work.
 *
 * Built from source by packages/hal-pmem/_build.ts with the system C
 * compiler into a per-user cache; the file name carries a hash of this
 * source, so editing it forces a rebuild. It needs no libpmem2 header: only
 * the shapes of the function pointers below (they match libpmem2.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TWZ_EXPORT __attribute__((visibility("default")))

/* Same shape as pmem2_persist_fn and pmem2_flush_fn. */
typedef void (*twz_range_fn)(const void *ptr, size_t size);
/* Same shape as pmem2_drain_fn. */
typedef void (*twz_drain_fn)(void);

/* Version of this calling convention; _ffi.ts refuses any other. */
TWZ_EXPORT uint32_t twz_trampoline_abi(void) { return 4; }

/* Persist [base + offset, base + offset + length): flush, then drain. */
TWZ_EXPORT void twz_persist(twz_range_fn persist, const char *base, size_t offset,
                            size_t length) {
  persist(base + offset, length);
}

/* Start writing back [base + offset, base + offset + length); no ordering. */
TWZ_EXPORT void twz_flush(twz_range_fn flush, const char *base, size_t offset,
                          size_t length) {
  flush(base + offset, length);
}

/*
 * The same two calls with 32-bit offset and length, for mappings under
 * 4 GiB: JavaScript passes them as plain numbers (a size_t must be passed as
 * a BigInt, which costs an allocation per call).
 */
TWZ_EXPORT void twz_persist32(twz_range_fn persist, const char *base, uint32_t offset,
                              uint32_t length) {
  persist(base + offset, length);
}

TWZ_EXPORT void twz_flush32(twz_range_fn flush, const char *base, uint32_t offset,
                            uint32_t length) {
  flush(base + offset, length);
}

/*
 * Flush `count` ranges in one call: ranges[2i] is an offset from base,
 * ranges[2i + 1] a length (doubles, so any offset below 2^53 fits).
 */
TWZ_EXPORT void twz_flush_ranges(twz_range_fn flush, const char *base, const double *ranges,
                                 uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    flush(base + (size_t)ranges[2 * i], (size_t)ranges[2 * i + 1]);
  }
}

/* twz_flush_ranges, then drain: the ranges are durable on return. */
TWZ_EXPORT void twz_persist_ranges(twz_range_fn flush, twz_drain_fn drain, const char *base,
                                   const double *ranges, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    flush(base + (size_t)ranges[2 * i], (size_t)ranges[2 * i + 1]);
  }
  drain();
}

/* Wait until every earlier flush is durable. */
TWZ_EXPORT void twz_drain(twz_drain_fn drain) { drain(); }

/*
 * Benchmark baseline with no JavaScript in the loop: `count` times, store
 * `length` bytes at the next `length`-sized slot of
 * [base, base + span) and persist them. Gives the cost of libpmem2 alone.
 */
TWZ_EXPORT void twz_bench_store_persist(twz_range_fn persist, char *base, size_t span,
                                        size_t length, uint32_t count) {
  if (length == 0 || span < length) return;
  size_t slots = span / length;
  for (uint32_t i = 0; i < count; i++) {
    char *target = base + (size_t)(i % slots) * length;
    memset(target, (int)(i & 0xff), length);
    persist(target, length);
  }
}
