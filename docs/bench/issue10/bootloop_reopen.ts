import { Kernel } from "@twz/kernel";
import { plugin } from "@twz/hal-pmem";
const image = Deno.args[0]!;
if (Deno.args[1] === "populate") {
  const hal = await plugin.open({ image, size: 256 << 20, create: true });
  const k = Kernel.boot(hal);
  for (let i = 0; i < 20000; i++) k.create({ size: 1024 });
  k.create({ size: 1024 });
  k.halt(); hal.close(); Deno.exit(0);
}
const t: number[] = [];
for (let i = 0; i < 100; i++) {
  const hal = await plugin.open({ image });
  const t1 = performance.now();
  const k = Kernel.boot(hal);
  t.push(performance.now() - t1);
  if (k.report.replayed !== 4) throw new Error("no replay");
  k.halt();
  hal.close();
}
const first = t[0]!;
t.sort((a, b) => a - b);
console.log("first", first.toFixed(3), "median", t[50]!.toFixed(4), "p10", t[10]!.toFixed(4));
