// A Worker for mod_test.ts: attach the posted share, report a byte, write
// another, persist it, close and report that the view was detached.
import type { RegionShare } from "@twz/kernel/hal";
import { plugin } from "../mod.ts";

const scope = self as unknown as {
  onmessage: (e: MessageEvent<RegionShare>) => void;
  postMessage: (value: unknown) => void;
};

scope.onmessage = async (e) => {
  try {
    const region = await plugin.attach(e.data);
    const seen = region.bytes[12345];
    region.bytes[23456] = 0x77;
    region.persist(23456, 1);
    const bytes = region.bytes;
    region.close();
    scope.postMessage({ seen, size: region.size, detached: bytes.length === 0 });
  } catch (err) {
    scope.postMessage({ error: String(err) });
  }
};
