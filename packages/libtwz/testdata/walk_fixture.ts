// Run by packages/libtwz/process_test.ts in a NEW process: opens the image,
// finds the list head by name and walks it across objects, printing JSON.
import { BASE_OFFSET, formatId } from "@twz/kernel/abi";
import { ptr, string, struct, Twz, u32 } from "@twz/libtwz";

const Node = struct({ value: u32, label: string(16), next: ptr("self") });
const image = Deno.args[0]!;
const twz = await Twz.open({ hal: "sim", image });
const out: { value: number; label: string; id: string }[] = [];
for (
  let n = Node.at(twz.open("/lists/head"), BASE_OFFSET) as ReturnType<typeof Node.at> | null;
  n;
  n = n.next
) {
  out.push({ value: n.value, label: n.label, id: formatId(n.$id) });
}
console.log(JSON.stringify({ walk: out, formatted: twz.port.info().formatted }));
twz.close();
