// The public entries show the entry points and not libtwz's internals
// (`deno doc` prints every export, `@internal` or not, so internals live in
// `_` modules that only libtwz imports).
import assert from "node:assert/strict";
import * as root from "./mod.ts";
import * as tx from "./tx.ts";
import * as naming from "./naming.ts";
import * as object from "./object.ts";
import * as layout from "./layout.ts";
import * as codec from "./codec.ts";
import * as hashmap from "./hashmap.ts";
import * as security from "./security.ts";
import * as global from "./global.ts";

Deno.test("the public entries hold the entry points and none of the internals", () => {
  const has = (m: object, names: string[]) => {
    for (const n of names) assert.ok(n in m, `${n} is missing`);
  };
  const lacks = (m: object, names: string[]) => {
    for (const n of names) assert.ok(!(n in m), `${n} is exported`);
  };
  has(root, ["Twz", "TwzObject", "Naming", "struct", "u32", "ptr", "named", "resolveObj"]);
  lacks(root, [
    "metaProblem",
    "metaChecksum",
    "META_CHECKSUM",
    "META_PENDING_NAME",
    "KNOWN_META_FLAGS",
    "readRootRecord",
    "writeRootRecord",
    "writeRootMeta",
    "dirProblem",
    "dirCapacityOf",
    "rewriteDirHeader",
    "splitPath",
    "Codegen",
  ]);
  has(tx, ["transaction", "Tx", "prepareThreadLogs", "inspectTxLog", "inspectTxLanes"]);
  lacks(tx, ["TX", "activeTx", "writeLanesHeader", "recoverTransactions", "committedLogs"]);
  lacks(naming, ["readRootRecord", "dirProblem", "splitPath", "writeRootMeta"]);
  lacks(object, ["metaProblem", "META_PENDING_NAME"]);
  lacks(layout, ["Codegen"]);
  has(codec, ["codec"]);
  lacks(codec, ["hashBytes", "hashInt", "codecOfKind"]);
  lacks(hashmap, ["HEAP_HEADER"]);
  has(security, [
    "createKey",
    "rotateKey",
    "createContext",
    "grant",
    "delegate",
    "revoke",
    "attach",
    "detach",
    "contexts",
    "access",
    "serveGate",
    "callGate",
  ]);
  // The epoch word's internals stay in `_epoch.ts`.
  lacks(security, ["NO_EPOCH", "withdrawnError"]);
  lacks(root, ["NO_EPOCH", "withdrawnError"]);
  // The global space's entry: the wrappers of port.global, not the port facts.
  has(global, ["status", "publish", "own", "release", "info", "refresh", "isNode", "globalPath"]);
  lacks(global, ["nodeOf", "portFacts"]);
});
