// A separate process for mod_test.ts: `deno run -A child.ts MODE ARGS...`.
// Prints one JSON line with what it saw.
import { persistPaths, plugin, type PmemRegion } from "../mod.ts";
import { exists } from "../_build.ts";

const [mode, image, ...rest] = Deno.args;
const print = (value: unknown) => console.log(JSON.stringify(value));

switch (mode) {
  case "write": {
    // Store and persist, then exit without close: only persist made it durable.
    const [offset, text] = rest;
    const hal = await plugin.open({ image, size: 1 << 20, create: true });
    const data = new TextEncoder().encode(text);
    hal.region.bytes.set(data, Number(offset));
    hal.region.persist(Number(offset), data.length);
    print({ granularity: hal.region.granularity });
    Deno.exit(0);
    break;
  }
  case "read": {
    const [offset, length] = rest.map(Number);
    const hal = await plugin.open({ image });
    const text = new TextDecoder().decode(hal.region.bytes.slice(offset!, offset! + length!));
    hal.close();
    print({ text });
    break;
  }
  case "missing": {
    const description = plugin.describe();
    let error: { name: string; message: string; cause: boolean } | undefined;
    try {
      await plugin.open({ image, size: 1 << 20, create: true });
    } catch (e) {
      const err = e as Error;
      error = { name: err.name, message: err.message, cause: err.cause !== undefined };
    }
    print({ description, error, exists: exists(image!) });
    break;
  }
  case "fallback": {
    const calls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const hal = await plugin.open({ image, size: 1 << 20, create: i === 0 });
      const region = hal.region as PmemRegion;
      region.bytes[100 + i] = 7;
      region.persist(100 + i, 1);
      region.flush(0, 4096);
      region.drain();
      persistPaths(region).fnptr(0, 64);
      calls.push(region.calls);
      hal.close();
    }
    print({ calls });
    break;
  }
  default:
    throw new Error(`unknown mode ${mode}`);
}
