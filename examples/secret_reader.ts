/**
 * The reader half of the two-program security demo (docs/SECURITY.md, "The
 * demo"; the owner is examples/secret_owner.ts). Run in the context the
 * owner grants to, it reads the owner's private object while it holds the
 * capability, and is refused (`AccessDenied`) once the owner revoked it.
 *
 *   twz> run --context reader examples/secret_reader.ts /demo
 *
 * Argument: the demo's directory (default /demo). Exit code 0 when the read
 * succeeded while granted and failed after the revocation, 1 otherwise.
 *
 * @module
 */
import { ErrorCode, formatId, TwzError } from "@twz/kernel/abi";
import type { ProgramEnv } from "@twz/libtwz/program";
import { GRANTED, OWNER, READ, READER, REFUSED, REVOKED, say, waitFor } from "./secret_owner.ts";

export default async function main(env: ProgramEnv, args: string[]): Promise<number> {
  const dir = args[0] ?? "/demo";
  const twz = env.twz;
  // The owner binds the names once it has granted.
  const end = Date.now() + 60_000;
  while (!twz.naming.exists(`${dir}/mailbox`)) {
    if (Date.now() > end) {
      console.error(`reader: no ${dir}/mailbox (is secret_owner running?)`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const secret = twz.naming.lookup(`${dir}/secret`)!.id;
  const box = twz.naming.lookup(`${dir}/mailbox`)!.id;
  waitFor(env, box, OWNER, GRANTED);
  // Through libtwz: a read-only handle (the capability gives read, not write).
  const read = () => {
    const obj = twz.open(secret, { write: false });
    const bytes = obj.read(obj.baseOffset, 64);
    return new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
  };
  console.log(`reader: ${formatId(secret)} says "${read()}"`);
  say(env, box, READER, READ);

  waitFor(env, box, OWNER, REVOKED);
  try {
    // The mapping made above was withdrawn; opening maps again, and the
    // kernel no longer finds a grant.
    read();
    console.error("reader: still readable after the revocation");
    return 1;
  } catch (e) {
    if (!(e instanceof TwzError && e.code === ErrorCode.AccessDenied)) throw e;
    console.log(`reader: refused after the revocation: ${e.message}`);
  } finally {
    say(env, box, READER, REFUSED);
  }
  return 0;
}
