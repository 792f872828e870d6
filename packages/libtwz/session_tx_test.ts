// The size of a new primary transaction log scales with the image; an
// existing log of any size is used as it is.
import assert from "node:assert/strict";
import { Kernel } from "@twz/kernel";
import { openSim } from "@twz/hal-sim";
import { Twz } from "@twz/libtwz";
import { transaction } from "./tx.ts";
import { defaultLogBytes, TXLOG_MIN_SIZE, TXLOG_NAME, TXLOG_SIZE } from "./_session_tx.ts";

Deno.test("defaultLogBytes(): 1/16 of the image in 4 KiB steps, 16 KiB to 4 MiB", () => {
  assert.equal(defaultLogBytes(204 << 10), TXLOG_MIN_SIZE);
  assert.equal(defaultLogBytes(1756 << 10), 108 << 10);
  assert.equal(defaultLogBytes((1 << 20) + 5000), 64 << 10);
  assert.equal(defaultLogBytes(64 << 20), TXLOG_SIZE, "the default image keeps a 4 MiB log");
  assert.equal(defaultLogBytes(16 * 2 ** 30), TXLOG_SIZE);
  for (const size of [300_001, 5 << 20, 77_777_777]) assert.equal(defaultLogBytes(size) % 4096, 0);
});

Deno.test("the first transaction makes /.txlog at the image's log size", () => {
  for (const size of [2 << 20, 8 << 20, 128 << 20]) {
    const hal = openSim({ size });
    const twz = Twz.attach(Kernel.boot(hal).port());
    const obj = twz.create({ size: 4096 });
    transaction(twz, (tx) => tx.setU32(obj, 512, 7));
    assert.equal(twz.open(TXLOG_NAME).size, defaultLogBytes(size), `image ${size}`);
    hal.close();
  }
});

Deno.test("an existing /.txlog of another size is used as it is, across a crash", () => {
  const hal = openSim({ size: 8 << 20 });
  let twz = Twz.attach(Kernel.boot(hal).port());
  const big = twz.create({ size: TXLOG_SIZE, name: TXLOG_NAME, fot: { entries: 0 } });
  const id = big.id;
  const obj = twz.create({ size: 4096, name: "/o" });
  transaction(twz, (tx) => tx.setU32(obj, 512, 1));
  // A transaction larger than the 8 MiB image's own log size (512 KiB) fits the old log.
  const data = twz.create({ size: 1 << 20, name: "/data" });
  transaction(twz, (tx) => tx.fill(data, 4096, 600 << 10, 0x5a));
  assert.equal(twz.naming.lookup(TXLOG_NAME)?.id, id);
  assert.equal(twz.open(TXLOG_NAME).size, TXLOG_SIZE);
  hal.power!.powerFail({ policy: "strict", seed: 1 });
  twz = Twz.attach(Kernel.boot(hal).port());
  assert.equal(twz.naming.lookup(TXLOG_NAME)?.id, id, "the same log after the crash");
  assert.equal(twz.open("/o").view.getUint32(512, true), 1);
  assert.equal(twz.open("/data").bytes[4096 + (600 << 10) - 1], 0x5a);
  hal.close();
});

Deno.test("Twz.recovered counts the transactions and records the opening session replayed", () => {
  const hal = openSim({ size: 8 << 20 });
  const twz = Twz.attach(Kernel.boot(hal).port());
  assert.deepEqual(twz.recovered, { transactions: 0, records: 0 });
  const obj = twz.create({ size: 8192, name: "/o" });
  transaction(twz, (tx) => {
    tx.setU32(obj, 512, 1);
    tx.setU32(obj, 4096, 2);
  });
  // Committed and applied, but the applied mark is not durable yet: a
  // power failure now leaves the transaction for recovery to replay.
  hal.power!.powerFail({ policy: "strict" });
  const kernel = Kernel.boot(hal);
  const first = Twz.attach(kernel.port());
  const got = first.recovered;
  assert.equal(got.transactions, 1);
  assert.ok(got.records >= 2, `${got.records} records`);
  assert.equal(first.open("/o").view.getUint32(4096, true), 2);
  assert.deepEqual(Twz.attach(kernel.port()).recovered, { transactions: 0, records: 0 });
  hal.power!.powerFail({ policy: "strict" });
  assert.deepEqual(Twz.attach(Kernel.boot(hal).port()).recovered, {
    transactions: 0,
    records: 0,
  }, "replayed once, durably");
  hal.close();
});
