// The KV workload of docs/BENCHMARKS.md on lmdb-js (Node): K durable puts
// (putSync, one write transaction each) of 8-byte keys and 16-byte values,
// then K getBinary lookups. usage: node kv_lmdb.mjs DIR [K]
import { open } from "lmdb";
import { rmSync } from "node:fs";

const dir = process.argv[2] ?? "/dev/shm";
const n = Number(process.argv[3] ?? 100000);
const path = `${dir}/kv-lmdb-${process.pid}`;
rmSync(path, { recursive: true, force: true });
const db = open({ path, keyEncoding: "uint32", encoding: "binary" });
const value = Buffer.from("value-0123456789");
const now = () => performance.now() / 1000;
let t0 = now();
for (let k = 0; k < n; k++) db.putSync(k, value);
const insert = n / (now() - t0);
let found = 0;
t0 = now();
for (let k = 0; k < n; k++) if (db.getBinary(k)) found++;
const get = n / (now() - t0);
await db.close();
rmSync(path, { recursive: true, force: true });
console.log(JSON.stringify({
  peer: "lmdb",
  dir,
  ops: n,
  insert_ops_per_sec: Math.round(insert),
  get_ops_per_sec: Math.round(get),
  found,
}));
if (found !== n) process.exit(1);
