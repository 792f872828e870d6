// A script using libtwz on an image (fixture of tests/control_socket_test.ts):
// `deno run -A _test_control_open.ts IMAGE PATH TEXT` opens IMAGE with
// `Twz.open` (a client session when a running `twz boot` holds it), writes
// TEXT at the base of the object named PATH (created when absent), persists
// it, and prints `wrote OFFSET` and the port kind.
import { Twz } from "@twz/libtwz";

const [image, path, text] = Deno.args;
if (image === undefined || path === undefined || text === undefined) {
  throw new Error("usage: _test_control_open.ts IMAGE PATH TEXT");
}
const twz = await Twz.open({ image });
try {
  const obj = twz.naming.exists(path) ? twz.open(path) : twz.create({ name: path, size: 4096 });
  const bytes = new TextEncoder().encode(text);
  obj.write(obj.baseOffset, bytes);
  obj.persist(obj.baseOffset, bytes.length);
  console.log(`wrote ${obj.baseOffset}`);
  console.log(`port ${twz.port.constructor.name}`);
} finally {
  twz.close();
}
