import type { ProgramEnv } from "@twz/libtwz/program";
import { transaction } from "@twz/libtwz/tx";
export default function main(env: ProgramEnv, args: string[]): number {
  const twz = env.twz;
  const obj = twz.create({ size: 4096 });
  const n = Number(args[0] ?? 2000);
  for (let i = 0; i < 200; i++) transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, i));
  let t = performance.now();
  for (let i = 0; i < n; i++) transaction(twz, (tx) => tx.setU32(obj, obj.baseOffset, i));
  const txUs = (performance.now() - t) * 1000 / n;
  t = performance.now();
  for (let i = 0; i < n; i++) env.port.clock();
  const scUs = (performance.now() - t) * 1000 / n;
  t = performance.now();
  const m = obj.mapping;
  for (let i = 0; i < n; i++) m.persist(0, 64);
  const pUs = (performance.now() - t) * 1000 / n;
  console.log(`tx ${txUs.toFixed(1)} us, clock syscall ${scUs.toFixed(1)} us, persist ${pUs.toFixed(1)} us`);
  return 0;
}
