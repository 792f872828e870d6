/**
 * The owner half of the two-program security demo (docs/SECURITY.md, "The
 * demo"): it makes a key and a private object under it (default protections
 * none: nobody may read it without a capability), writes a secret into it,
 * grants the reader's security context a read capability, waits until the
 * reader has read it, then revokes the capability.
 *
 *   twz> ctx new owner
 *   twz> ctx new reader
 *   twz> run --context owner examples/secret_owner.ts reader /demo &
 *   twz> run --context reader examples/secret_reader.ts /demo
 *
 * Arguments: the reader's context (a name under /sec/ctx, a path or an ID)
 * and a directory for the demo's names: DIR/secret (the private object) and
 * DIR/mailbox (two words the programs step through: the owner's state and
 * the reader's).
 *
 * The owner runs attached to its own context: creating the key gives that
 * context a read capability on the key's private object, which is what lets
 * the owner sign grants for objects under the key (and revoke them).
 *
 * @module
 */
import { formatId, type ObjID, parseId, SecProt } from "@twz/kernel/abi";
import type { Twz } from "@twz/libtwz";
import type { ProgramEnv } from "@twz/libtwz/program";
import { contexts, createKey, createProtected, grant, revoke } from "@twz/libtwz/security";

/** The secret the owner writes (at the private object's base). */
export const SECRET = "the password is swordfish";
/** Words of DIR/mailbox (after its base): the owner's state, the reader's. */
export const OWNER = 0, READER = 4;
/** Owner states. */
export const GRANTED = 1, REVOKED = 2;
/** Reader states. */
export const READ = 1, REFUSED = 2;

/** A context given as an ID, a path, or a name under /sec/ctx. */
export function contextOf(twz: Twz, text: string): ObjID {
  if (/^(0x)?[0-9a-f]{32}$/i.test(text)) return parseId(text);
  const path = text.startsWith("/") ? text : `/sec/ctx/${text}`;
  const found = twz.naming.lookup(path);
  if (found === null || found === undefined) throw new Error(`no context ${text} (${path})`);
  return found.id;
}

/**
 * Wait (sleeping in thread_sync, 20 ms at a time) until word `at` of the
 * mailbox reaches `value`; false after `limitMs`.
 */
export function waitFor(
  env: ProgramEnv,
  box: ObjID,
  at: number,
  value: number,
  limitMs = 60_000,
): boolean {
  const end = Date.now() + limitMs;
  for (;;) {
    const now = new DataView(env.port.read(box, 256 + at, 4).buffer).getUint32(0, true);
    if (now >= value) return true;
    if (Date.now() > end) return false;
    env.port.threadSync([{ op: "sleep", id: box, offset: 256 + at, value: now, timeoutMs: 20 }]);
  }
}

/** Store `value` in word `at` of the mailbox and wake whoever sleeps on it. */
export function say(env: ProgramEnv, box: ObjID, at: number, value: number): void {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  env.port.write(box, 256 + at, bytes);
  env.port.threadSync([{ op: "wake", id: box, offset: 256 + at, count: 8 }]);
}

export default async function main(env: ProgramEnv, args: string[]): Promise<number> {
  const [readerText, dir = "/demo"] = args;
  if (readerText === undefined) {
    console.error("usage: secret_owner READER-CONTEXT [DIR]");
    return 2;
  }
  const twz = env.twz;
  const reader = contextOf(twz, readerText);
  const [mine] = contexts(twz);
  if (mine === undefined) {
    console.error("secret_owner: run me in a context of my own (run --context owner ...)");
    return 2;
  }
  // A key (my context may read its private half) and a private object under
  // it: default protections none; my context holds read-write on it through
  // a capability signed by the key.
  const key = await createKey(twz);
  const obj = await createProtected(twz, { key: key.kuid, size: 4096 });
  const bytes = new TextEncoder().encode(SECRET);
  obj.write(obj.baseOffset, bytes);
  obj.persist(obj.baseOffset, bytes.length);
  const secret = obj.id;
  console.log(
    `owner: private object ${formatId(secret)} (default protections none) holds the secret`,
  );

  // The reader's capability, then the names the reader looks for.
  const box = twz.create({ size: 4096 }).id;
  const { index } = await grant(twz, { target: secret, to: reader, prot: SecProt.Read });
  say(env, box, OWNER, GRANTED);
  twz.naming.bind(`${dir}/secret`, secret, { parents: true });
  twz.naming.bind(`${dir}/mailbox`, box, { parents: true });
  console.log(`owner: granted read to context ${formatId(reader)} (grant ${index})`);

  if (!waitFor(env, box, READER, READ)) {
    console.error("owner: the reader never read the secret");
    return 1;
  }
  revoke(twz, reader, index);
  console.log("owner: revoked the reader's capability");
  say(env, box, OWNER, REVOKED);
  if (!waitFor(env, box, READER, REFUSED)) {
    console.error("owner: the reader did not report the refusal");
    return 1;
  }
  return 0;
}
