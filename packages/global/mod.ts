/**
 * `@twz/global`: the global object space on NATS JetStream (docs/GLOBAL.md).
 * A kernel joins a cluster as a node with {@linkcode GlobalNode.join}; the
 * NATS client runs in a Worker ({@linkcode NatsLink}, `./link`);
 * `./cluster` starts and stops local demo clusters of `nats-server`s.
 *
 * @module
 */
export * from "./space.ts";
export type { Bucket, KvEntry, Link, LinkOps, LinkOptions, Ret } from "./_link_api.ts";
export { CasConflict } from "./_link_api.ts";
