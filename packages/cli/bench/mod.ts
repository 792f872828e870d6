/**
 * The registry of `twz bench` cases: name -> module. Each module exports
 * `run(options: BenchOptions): Promise<BenchResult[]>`. A module is loaded only
 * when its benchmark is asked for.
 *
 * @module
 */
import type { BenchOptions, BenchResult } from "./types.ts";

/** A loaded benchmark module. */
export interface BenchModule {
  run(options: BenchOptions): Promise<BenchResult[]>;
}

/** Every benchmark, with a one-line summary for `twz bench --list`. */
export const BENCHMARKS: Record<string, { summary: string; load: () => Promise<BenchModule> }> = {
  "boot": {
    summary: "boot time of an empty image and of one holding many objects",
    load: () => import("./boot.ts"),
  },
  "create-delete": {
    summary: "object create + delete throughput, metadata bytes per object",
    load: () => import("./create_delete.ts"),
  },
  "persist": {
    summary: "64-byte store + persist through the HAL vs the raw libpmem2 call",
    load: () => import("./persist.ts"),
  },
  "ptr-resolve": {
    summary: "following an invariant pointer vs a raw DataView read",
    load: () => import("./ptr_resolve.ts"),
  },
  "explore": {
    summary:
      "twz explore with 100,000 objects in headless chromium: navigation start to the first page of the object table; expanding a node with 1,000 neighbours",
    load: () => import("./explore.ts"),
  },
  "ptr-chase": {
    summary:
      "walking a shuffled 1,024-node list in one object and over 16: libtwz n.next and cursor vs a hand-decoded DataView chase and plain JS objects",
    load: () => import("./ptr_chase.ts"),
  },
  "kv-insert": {
    summary: "persistent hash map inserts, one durable transaction each (peer workload)",
    load: () => import("./kv_insert.ts"),
  },
  "kv-get": {
    summary: "persistent hash map lookups (peer workload)",
    load: () => import("./kv_get.ts"),
  },
  "accessors": {
    summary: "typed-layout field reads and writes vs raw DataView",
    load: () => import("./accessors.ts"),
  },
  "record-sweep": {
    summary:
      "1,024 records read and written through Type.records(...).at(i) and its columns vs a raw DataView loop",
    load: () => import("./record_sweep.ts"),
  },
  "syscall": {
    summary:
      "system-call round trip from a permissions-none Worker (Clock) vs a bare SharedArrayBuffer ping-pong",
    load: () => import("./syscall.ts"),
  },
  "spawn": {
    summary:
      "program start from /bin (twz run NAME) vs a bare permissions-none Worker importing the same bundle",
    load: () => import("./spawn.ts"),
  },
  "wake": {
    summary:
      "wake-up latency between two threads through thread_sync (p50, p99): direct and kernel paths vs bare Atomics.wait/notify",
    load: () => import("./wake.ts"),
  },
  "mutex": {
    summary:
      "libtwz Mutex: uncontended lock + unlock vs a bare compareExchange pair; 4-thread counter vs bare Workers on a SharedArrayBuffer",
    load: () => import("./mutex.ts"),
  },
  "mqueue": {
    summary:
      "messages per second through a libtwz message queue between two programs (64-byte messages)",
    load: () => import("./mqueue.ts"),
  },
  "sec-verify": {
    summary:
      "first verification of a capability (decode, import key, verify) vs bare WebCrypto importKey + verify, per scheme",
    load: () => import("./security_verify.ts"),
  },
  "sec-map": {
    summary:
      "kernel-level map+unmap through a thread's port holding a cached verified read capability vs the admin's default-protection map",
    load: () => import("./security_map.ts"),
  },
  "global": {
    summary:
      "global object space on a 3-server NATS cluster: first dereference remote vs local, ownership handover/takeover, published vs local transactions vs a bare KV put, time until another node sees a commit",
    load: () => import("./global.ts"),
  },
  "crashtest": {
    summary: "crash states checked per second by twz crashtest (kernel-objects)",
    load: () => import("./crashtest.ts"),
  },
};
