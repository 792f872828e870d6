import assert from "node:assert/strict";
import {
  decodeRequest,
  decodeResponse,
  EncodeOverflow,
  encodeRequest,
  encodeResponse,
  ErrorCode,
  Sys,
  sysName,
  TwzError,
} from "./mod.ts";

Deno.test("encodeRequest()/decodeRequest() carry every value kind unchanged", () => {
  const args = [
    undefined,
    null,
    true,
    false,
    0,
    -1,
    2 ** 31,
    -0,
    1.5,
    NaN,
    0n,
    (1n << 127n) + 12345n,
    -(1n << 70n),
    "",
    "naïve 🚀 name",
    new Uint8Array([0, 1, 255]),
    new Float64Array([3, 0.5, -7]),
    [1, [2, "x"]],
    { size: 4096, lifetime: "volatile", sources: [{ id: 1n << 64n, length: 3 }] },
  ];
  const buf = new Uint8Array(4096);
  const n = encodeRequest(buf, Sys.Create, args);
  const back = decodeRequest(buf, n);
  assert.equal(back.sys, Sys.Create);
  assert.equal(back.args.length, args.length);
  assert.deepEqual(back.args.slice(0, 7), args.slice(0, 7));
  assert.ok(Object.is(back.args[7], -0));
  assert.equal(back.args[8], 1.5);
  assert.ok(Number.isNaN(back.args[9]));
  assert.deepEqual(back.args.slice(10), args.slice(10));
});

Deno.test("decodeResponse() throws the kernel's TwzError with its code and message", () => {
  const buf = new Uint8Array(256);
  const n = encodeResponse(
    buf,
    undefined,
    new TwzError(ErrorCode.ObjectNotFound, "no such object"),
  );
  assert.throws(() => decodeResponse(buf, n), (e: unknown) => {
    assert.ok(e instanceof TwzError);
    assert.equal(e.code, ErrorCode.ObjectNotFound);
    assert.equal(e.message, "no such object");
    return true;
  });
  const m = encodeResponse(buf, [1n << 64n, 7]);
  assert.deepEqual(decodeResponse(buf, m), [1n << 64n, 7]);
});

Deno.test("a message that does not fit raises EncodeOverflow; a truncated one is refused", () => {
  const small = new Uint8Array(16);
  assert.throws(() => encodeRequest(small, Sys.Write, ["x".repeat(100)]), EncodeOverflow);
  assert.throws(() => encodeRequest(small, Sys.Write, [new Uint8Array(100)]), EncodeOverflow);
  const buf = new Uint8Array(64);
  const n = encodeRequest(buf, Sys.Stat, [1n << 64n]);
  assert.throws(
    () => decodeRequest(buf, n - 1),
    (e: unknown) => e instanceof TwzError && e.code === ErrorCode.InvalidArgument,
  );
  buf[4] = 200; // an unknown tag
  assert.throws(() => decodeRequest(buf, n), /malformed system-call message \(tag 200\)/);
});

Deno.test("encodeRequest() refuses values a system call cannot carry", () => {
  const buf = new Uint8Array(64);
  assert.throws(() => encodeRequest(buf, Sys.Clock, [() => 1]), TypeError);
  assert.throws(() => encodeRequest(buf, Sys.Clock, [Symbol("s")]), TypeError);
});

Deno.test("sysName() names calls as the docs write them", () => {
  assert.equal(sysName(Sys.Map), "map");
  assert.equal(sysName(Sys.ThreadSync), "thread_sync");
  assert.equal(sysName(Sys.RootObjectId), "root_object_id");
  assert.equal(sysName(999), "syscall 999");
});
