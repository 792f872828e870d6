// The message queue (mqueue.ts) in one process, on the kernel's own session:
// order, capacity, polling, transactions (commit, abort, the lock held until
// the end), reopening, damage, and a crash at every drain of a
// producer/consumer run. Blocking between threads is in
// tests/mqueue_programs_test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Kernel } from "@twz/kernel";
import { ErrorCode, TwzError } from "@twz/kernel/abi";
import { openSim, PowerFailed, type SimHal } from "@twz/hal-sim";
import { Twz, type TwzObject } from "@twz/libtwz";
import { codec } from "./codec.ts";
import { MessageQueue } from "./mqueue.ts";
import { Mutex } from "./sync.ts";
import { transaction } from "./tx.ts";

function session(size = 16 << 20): { hal: SimHal; twz: Twz } {
  const hal = openSim({ size });
  return { hal, twz: Twz.attach(Kernel.boot(hal).port()) };
}

function queueObject(twz: Twz, name = "/mq"): TwzObject {
  return twz.create({ name, size: 64 << 10 });
}

/** A TwzError with `code` whose message is one line matching `message`. */
function oneLine(code: number, message: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof TwzError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  };
}

Deno.test("MessageQueue: first in, first out, with sizes and totals; both codecs", () => {
  const { hal, twz } = session();
  try {
    const q = MessageQueue.create(twz, queueObject(twz), codec.string, {
      capacity: 4,
      maxBytes: 16,
    });
    assert.equal(q.size, 0);
    for (const m of ["a", "bb", "", "dddd"]) assert.equal(q.send(m), true);
    assert.equal(q.size, 4);
    assert.deepEqual(q.snapshot(), ["a", "bb", "", "dddd"]);
    assert.equal(q.receive(0), "a");
    assert.equal(q.receive(0), "bb");
    // Wraps around the ring.
    assert.equal(q.send("e"), true);
    assert.equal(q.send("ff"), true);
    assert.deepEqual(q.snapshot(), ["", "dddd", "e", "ff"]);
    const out = [];
    for (let m = q.receive(0); m !== undefined; m = q.receive(0)) out.push(m);
    assert.deepEqual(out, ["", "dddd", "e", "ff"]);
    assert.deepEqual(q.totals, { sent: 6, received: 6 });

    const b = MessageQueue.create(twz, queueObject(twz, "/mqb"), codec.bytes, { maxBytes: 64 });
    const msg = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
    b.send(msg);
    assert.deepEqual(b.receive(0), msg);
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: a full queue refuses a send that does not wait; the kernel's session cannot wait", () => {
  const { hal, twz } = session();
  try {
    const q = MessageQueue.create(twz, queueObject(twz), codec.int, { capacity: 2, maxBytes: 8 });
    assert.equal(q.receive(0), undefined, "an empty queue polls undefined");
    assert.throws(() => q.receive(), oneLine(ErrorCode.NotSupported, /is empty.*cannot wait/));
    assert.throws(() => q.receive(50), oneLine(ErrorCode.NotSupported, /is empty/));
    assert.equal(q.send(1, 0), true);
    assert.equal(q.send(2, 0), true);
    assert.equal(q.send(3, 0), false, "full");
    assert.throws(() => q.send(3), oneLine(ErrorCode.NotSupported, /is full.*cannot wait/));
    assert.deepEqual(q.snapshot(), [1, 2], "the refused sends changed nothing");
    assert.equal(q.receive(), 1, "a message there is taken without waiting");
    assert.equal(q.send(3), true);
    assert.deepEqual(q.snapshot(), [2, 3]);
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: a lock held elsewhere is Busy for the kernel's session, not a hang", () => {
  const { hal, twz } = session();
  try {
    const obj = queueObject(twz);
    const q = MessageQueue.create(twz, obj, codec.int, { capacity: 4, maxBytes: 8 });
    q.send(7);
    // The queue's lock word, taken as another thread would hold it.
    const other = new Mutex(obj, q.offset + 64);
    assert.equal(other.tryLock(), true);
    assert.throws(() => q.receive(0), oneLine(ErrorCode.Busy, /locked by a program's thread/));
    assert.throws(() => q.send(8, 0), oneLine(ErrorCode.Busy, /try again later/));
    other.unlock();
    assert.equal(q.receive(0), 7);
    assert.equal(other.locked, false, "receive released the lock");
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: bad sizes, a message too long, a small or used object: one-line errors", () => {
  const { hal, twz } = session();
  try {
    for (
      const options of [{ capacity: 0 }, { capacity: 1.5 }, { maxBytes: 0 }, { maxBytes: 2 << 20 }]
    ) {
      assert.throws(
        () => MessageQueue.create(twz, queueObject(twz, "/bad"), codec.int, options),
        oneLine(ErrorCode.InvalidArgument, /capacity|maxBytes/),
      );
      twz.delete("/bad");
    }
    const small = twz.create({ size: 4096 });
    assert.throws(
      () => MessageQueue.create(twz, small, codec.int, { capacity: 1000, maxBytes: 8 }),
      oneLine(ErrorCode.InvalidArgument, /needs \d+ bytes .* which has \d+/),
    );
    assert.ok(MessageQueue.bytesNeeded({ capacity: 1000, maxBytes: 8 }) > 3584);
    const obj = queueObject(twz);
    const q = MessageQueue.create(twz, obj, codec.string, { capacity: 2, maxBytes: 4 });
    assert.throws(
      () => q.send("12345"),
      oneLine(ErrorCode.InvalidArgument, /5-byte message .*at most 4 bytes/),
    );
    assert.equal(q.size, 0);
    assert.throws(
      () => MessageQueue.create(twz, obj, codec.string, { capacity: 2, maxBytes: 4 }),
      oneLine(ErrorCode.InvalidArgument, /already holds something/),
    );
    assert.throws(
      () => MessageQueue.open(twz, obj, codec.int),
      oneLine(ErrorCode.InvalidArgument, /made with codec string, not int/),
    );
    assert.throws(
      () => MessageQueue.open(twz, twz.create({ size: 4096 }), codec.int),
      oneLine(ErrorCode.InvalidArgument, /holds no message queue/),
    );
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: receive in the caller's transaction commits with the record; an abort leaves the message", () => {
  const { hal, twz } = session();
  try {
    const obj = queueObject(twz);
    const q = MessageQueue.create(twz, obj, codec.int, { capacity: 4, maxBytes: 8 });
    const rec = twz.create({ size: 4096 });
    const at = rec.baseOffset;
    const lock = new Mutex(obj, q.offset + 64);
    q.send(10);
    q.send(11);

    transaction(twz, (tx) => {
      const m = q.receive(0)!;
      assert.equal(lock.locked, true, "held while the transaction runs");
      tx.setU32(rec, at, m);
    });
    assert.equal(lock.locked, false, "released when it ended");
    assert.equal(rec.view.getUint32(at, true), 10);
    assert.deepEqual(q.snapshot(), [11]);

    // An abort after the receive: the message stays, the record is not written.
    assert.throws(() =>
      transaction(twz, (tx) => {
        tx.setU32(rec, at, q.receive(0)!);
        throw new Error("the consumer failed");
      }), /the consumer failed/);
    assert.equal(lock.locked, false, "released after the abort");
    assert.equal(rec.view.getUint32(at, true), 10);
    assert.deepEqual(q.snapshot(), [11]);
    assert.equal(q.receive(0), 11, "the message is received again");

    // Two receives and a send in one transaction: the lock is taken once;
    // the empty queue answers at once (it cannot wait while holding it).
    q.send(1);
    const got = transaction(twz, () => {
      const a = q.receive(0);
      const b = q.receive(10_000);
      q.send(2);
      const c = q.receive(10_000);
      return [a, b, c];
    });
    assert.deepEqual(got, [1, undefined, 2]);
    assert.equal(q.size, 0);
    assert.deepEqual(q.totals, { sent: 4, received: 4 });
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: send in the caller's transaction commits with the producer's count; a full queue answers at once", () => {
  const { hal, twz } = session();
  try {
    const q = MessageQueue.create(twz, queueObject(twz), codec.int, { capacity: 2, maxBytes: 8 });
    const state = twz.create({ size: 4096 });
    const at = state.baseOffset;
    const sendCounted = (n: number) =>
      transaction(twz, (tx) => {
        const ok = q.send(n, 0);
        if (ok) tx.setU32(state, at, tx.getU32(state, at) + 1);
        return ok;
      });
    assert.equal(sendCounted(5), true);
    assert.equal(sendCounted(6), true);
    assert.equal(sendCounted(7), false);
    assert.equal(state.view.getUint32(at, true), 2);
    assert.throws(() =>
      transaction(twz, (tx) => {
        q.receive(0);
        q.send(8, 0);
        tx.setU32(state, at, 99);
        throw new Error("abort");
      }), /abort/);
    assert.deepEqual(q.snapshot(), [5, 6], "nothing of the aborted transaction");
    assert.equal(state.view.getUint32(at, true), 2);
    assert.equal(
      transaction(twz, () => [q.receive(0), q.send(9, 10_000), q.send(10, 10_000)].join()),
      "5,true,false",
      "full inside a transaction that holds the lock: false at once",
    );
    assert.deepEqual(q.snapshot(), [6, 9]);
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: messages survive a reopen of the image and a power failure", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "libtwz-mqueue-" });
  try {
    const image = join(dir, "q.img");
    let twz = await Twz.open({ hal: "sim", image, size: 8 << 20 });
    const q = MessageQueue.create(twz, queueObject(twz), codec.string, {
      capacity: 8,
      maxBytes: 32,
    });
    q.send("kept 1");
    q.send("kept 2");
    q.send("gone");
    q.receive(0);
    twz.close();
    twz = await Twz.open({ hal: "sim", image });
    const again = MessageQueue.open(twz, twz.open("/mq"), codec.string);
    assert.deepEqual(again.snapshot(), ["kept 2", "gone"]);
    // A read-only handle can be inspected, not changed.
    const ro = MessageQueue.open(twz, twz.open("/mq", { write: false }), codec.string);
    assert.deepEqual([ro.snapshot(), ro.size], [["kept 2", "gone"], 2]);
    assert.throws(() => ro.receive(0), (e) => e instanceof TwzError && /read-only/.test(e.message));
    assert.equal(again.receive(0), "kept 2");
    twz.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  // Power fails right after each send or receive returned: every one of them holds.
  const { hal, twz } = session();
  const q = MessageQueue.create(twz, queueObject(twz), codec.int, { capacity: 8, maxBytes: 8 });
  for (let i = 0; i < 5; i++) q.send(i);
  q.receive(0);
  hal.power!.powerFail({ policy: "strict" });
  const after = Twz.attach(Kernel.boot(hal).port());
  assert.deepEqual(MessageQueue.open(after, after.open("/mq"), codec.int).snapshot(), [1, 2, 3, 4]);
  hal.close();
});

Deno.test("MessageQueue: a damaged header is refused by open with one line", () => {
  const { hal, twz } = session();
  try {
    const obj = queueObject(twz);
    const q = MessageQueue.create(twz, obj, codec.int, { capacity: 4, maxBytes: 8 });
    q.send(1);
    const h = q.offset;
    const v = obj.view;
    const cases: [string, () => void, RegExp][] = [
      ["magic", () => v.setUint32(h, 0x12345678, true), /no header magic/],
      ["version", () => v.setUint8(h + 4, 9), /version 9/],
      ["codec", () => v.setUint8(h + 5, 200), /unknown codec 200/],
      ["capacity", () => v.setUint32(h + 8, 0, true), /capacity 0/],
      ["huge capacity", () => v.setUint32(h + 8, 1 << 30, true), /past the object/],
      ["stride", () => v.setUint32(h + 16, 3, true), /stride 3/],
      ["head", () => v.setUint32(h + 128, 4, true), /head slot 4/],
      ["count", () => v.setUint32(h + 132, 5, true), /count 5 exceeds/],
      ["root", () => v.setUint32(obj.baseOffset, 64, true), /names a header at 64/],
    ];
    for (const [what, damage, message] of cases) {
      const saved = obj.bytes.slice(0, 1024);
      damage();
      assert.throws(
        () => MessageQueue.open(twz, obj, codec.int),
        oneLine(ErrorCode.ObjectDamaged, message),
        what,
      );
      obj.bytes.set(saved, 0);
    }
    // A slot whose length is damaged: receive refuses it, and nothing changes.
    const ring = h + 192;
    v.setUint32(ring, 999, true);
    assert.throws(() => q.receive(0), oneLine(ErrorCode.ObjectDamaged, /slot 0 holds 999 bytes/));
    assert.equal(q.size, 1);
    assert.equal(new Mutex(obj, h + 64).locked, false, "the lock was released");
    assert.deepEqual(q.check(), { messages: 0, problem: "slot 0 holds 999 bytes, more than 8" });
    v.setUint32(ring, 8, true);
    assert.deepEqual(q.check(), { messages: 1 });
    v.setUint32(h + 132, 9, true);
    assert.match(q.check().problem!, /count 9 exceeds/);
  } finally {
    hal.close();
  }
});

Deno.test("MessageQueue: a crash at every drain of a producer/consumer run loses and repeats nothing", () => {
  // The producer sends n and records "sent n + 1" in one transaction; the
  // consumer receives and appends the message to its record in one
  // transaction. After a crash before any drain of the run: the record
  // holds 0..r-1, the queue exactly r..sent-1.
  const SENDS = 12;
  const run = (twz: Twz, q: MessageQueue<number>, prod: TwzObject, cons: TwzObject) => {
    const p = prod.baseOffset, c = cons.baseOffset;
    for (let i = 0; i < SENDS; i++) {
      transaction(twz, (tx) => {
        q.send(i, 0);
        tx.setU32(prod, p, i + 1);
      });
      if (i % 3 !== 0) {
        transaction(twz, (tx) => {
          const m = q.receive(0)!;
          const r = tx.getU32(cons, c);
          tx.setU32(cons, c + 4 + 4 * r, m);
          tx.setU32(cons, c, r + 1);
        });
      }
    }
  };
  const setup = () => {
    const s = session(8 << 20);
    const q = MessageQueue.create(s.twz, queueObject(s.twz), codec.int, {
      capacity: 8,
      maxBytes: 8,
    });
    const prod = s.twz.create({ name: "/prod", size: 4096 });
    const cons = s.twz.create({ name: "/cons", size: 4096 });
    return { ...s, q, prod, cons };
  };
  // Count the run's drains once.
  const dry = setup();
  const d0 = dry.hal.region.stats().drains;
  run(dry.twz, dry.q, dry.prod, dry.cons);
  const drains = dry.hal.region.stats().drains - d0;
  dry.hal.close();
  assert.ok(drains >= 2 * SENDS, `${drains} drains`);

  let crashed = 0;
  for (let k = 0; k <= drains; k++) {
    const s = setup();
    try {
      s.hal.power!.armCrash!(s.hal.region.stats().drains + k, {
        before: true,
        policy: "random",
        seed: k + 1,
      });
      try {
        run(s.twz, s.q, s.prod, s.cons);
      } catch (e) {
        if (!(e instanceof PowerFailed)) throw e;
        crashed++;
      }
      s.hal.power!.armCrash!(Number.MAX_SAFE_INTEGER); // disarmed
      s.hal.power!.powerFail({ policy: "strict" });
      const twz = Twz.attach(Kernel.boot(s.hal).port());
      const q = MessageQueue.open(twz, twz.open("/mq"), codec.int);
      const prod = twz.open("/prod"), cons = twz.open("/cons");
      const sent = prod.view.getUint32(prod.baseOffset, true);
      const r = cons.view.getUint32(cons.baseOffset, true);
      const record = Array.from(
        { length: r },
        (_, i) => cons.view.getUint32(cons.baseOffset + 4 + 4 * i, true),
      );
      const want = (from: number, to: number) =>
        Array.from({ length: to - from }, (_, i) => from + i);
      assert.deepEqual(record, want(0, r), `crash before drain ${k}: the record`);
      assert.deepEqual(q.snapshot(), want(r, sent), `crash before drain ${k}: the queue`);
      assert.deepEqual(q.totals, { sent, received: r });
      // The run goes on from there.
      q.send(100, 0);
      assert.equal(q.receive(0), sent > r ? r : 100);
    } finally {
      s.hal.close();
    }
  }
  assert.equal(crashed, drains, "every drain of the run was a crash point");
});
