// Creates a hal-sim image (`deno run ... make_image.ts PATH SIZE`): the
// allocation test runs it without permission to run programs.
import { openSim } from "../mod.ts";

const [path, size] = Deno.args;
openSim({ image: path, size: Number(size), create: true }).close();
