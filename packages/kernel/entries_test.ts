// The kernel's root entry does not re-export the kernel port's wire format
// (it lives in `@twz/kernel/abi`, where the channel and the control socket
// import it from): `deno doc @twz/kernel` shows the kernel, not the encoding.
import assert from "node:assert/strict";
import * as root from "@twz/kernel";
import * as abi from "@twz/kernel/abi";

const WIRE = [
  "Reader",
  "Writer",
  "encodeRequest",
  "decodeRequest",
  "encodeResponse",
  "decodeResponse",
  "EncodeOverflow",
];

Deno.test("@twz/kernel leaves the port's wire format to @twz/kernel/abi", () => {
  const exported = new Set(Object.keys(root));
  for (const name of WIRE) assert.ok(!exported.has(name), `@twz/kernel exports ${name}`);
  const inAbi = new Set(Object.keys(abi));
  for (const name of ["encodeRequest", "encodeResponse", "decodeResponse", "EncodeOverflow"]) {
    assert.ok(inAbi.has(name), `@twz/kernel/abi lacks ${name}`);
  }
  assert.ok(exported.has("Kernel") && exported.has("TwzError") && exported.has("Sys"));
});
