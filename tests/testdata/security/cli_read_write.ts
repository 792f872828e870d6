// A test program for tests/security_cli_test.ts (`run --context CTX` from the
// shell and `twz run --context CTX`): `cli_read_write OBJ [TEXT]` opens OBJ
// (a name or an ID) read-only with libtwz and prints what its data holds,
// then, with TEXT, opens it writable and writes TEXT at its base. One line
// per step:
//   read: TEXT            read refused: MESSAGE
//   wrote N bytes         write refused: MESSAGE
// Exit code 0 when every step succeeded, 3 when one was refused.
import type { ProgramEnv } from "@twz/libtwz/program";
import { TwzError } from "@twz/kernel/abi";

export default function main(env: ProgramEnv, args: string[]): number {
  const [target, text] = args;
  if (target === undefined) {
    env.console.log("usage: cli_read_write OBJ [TEXT]");
    return 2;
  }
  const refused = (what: string, e: unknown) => {
    if (!(e instanceof TwzError)) throw e;
    env.console.log(`${what} refused: ${e.message}`);
    return 3;
  };
  let code = 0;
  try {
    const obj = env.twz.open(target, { write: false });
    const bytes = obj.read(obj.baseOffset, 64);
    let end = bytes.indexOf(0);
    if (end < 0) end = bytes.length;
    env.console.log(`read: ${new TextDecoder().decode(bytes.subarray(0, end))}`);
  } catch (e) {
    code = refused("read", e);
  }
  if (text !== undefined) {
    try {
      const obj = env.twz.open(target, { write: true });
      const data = new TextEncoder().encode(text);
      obj.write(obj.baseOffset, data);
      obj.persist(obj.baseOffset, data.length);
      env.console.log(`wrote ${data.length} bytes`);
    } catch (e) {
      code = refused("write", e);
    }
  }
  return code;
}
