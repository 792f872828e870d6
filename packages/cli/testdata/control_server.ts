// A system holding an image and listening on its control socket, for tests
// of the remote port (packages/libtwz/_remote_test.ts): `deno run -A
// control_server.ts IMAGE` boots IMAGE (hal-sim, created at 16 MiB when
// absent), prints "listening PATH", and shuts down cleanly when its stdin
// ends, printing "closed".
import { closeBoard, openBoard } from "../board.ts";
import { startControl } from "../control.ts";

const image = Deno.args[0];
if (image === undefined) throw new Error("usage: control_server.ts IMAGE");
const board = await openBoard({
  hal: "sim",
  image,
  size: 16 << 20,
  console: { write: () => {}, readLine: () => Promise.resolve(null) },
  holder: "control_server test fixture",
});
const control = await startControl(board, {});
console.log(`listening ${control?.path}`);
for await (const _ of Deno.stdin.readable) { /* until stdin ends */ }
await control?.close();
closeBoard(board);
console.log("closed");
