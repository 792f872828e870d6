// A test program for tests/security_programs_test.ts and security_gaps_test.ts:
// it runs the operations its arguments name, in order, through its kernel
// port (the kernel's check), and prints one line per operation:
// `R <json>` with `ok` and, on failure, the TwzError's code and message.
// It never stops at a failure: the test reads what each operation did.
//
// Operations (IDs in hex, offsets and lengths in decimal):
//   map:ID:PROT         map ID (PROT: r, rw, rx); keeps the mapping
//   read:ID:OFF:LEN     read through the port; `text` is what it read
//   write:ID:OFF:TEXT   write through the port
//   view:ID:OFF:LEN     read through the mapping `map` made (length 0 once withdrawn)
//   keep:ID             keep a raw Uint8Array over the bytes `map` made (its buffer, same window)
//   kept:ID:OFF:LEN     read through that raw view
//   rawwrite:ID:OFF:TEXT store through the raw bytes of the mapping `map` made (read-only too)
//   twzread:ID:OFF:LEN  open ID read-only with libtwz (re-mapped after a revocation) and read
//   delete:ID           delete ID
//   copy:ID             create an object with ID's first 64 bytes as a source
//   access:ID           the effective protections and the reasons
//   newkey              create a key; `kuid`, `privateId` (hex), and whether this thread can
//                       read the private object (`readable`, `pkcs8`: its first byte is 0x30)
//   contexts            the thread's contexts
//   epoch               the thread's revocation epoch
//   step:SYNC:K         store K in word 0 of object SYNC (wake), then wait until word 1 >= K
//   serve:ID            answer the gate calls into ID from now on
//   answer:N            answer N gate calls ("echo:OFFSET:ARGS:CALLERTID:CALLERCONTEXTS")
//   call:ID:OFF:TEXT    call entry point OFF of gate ID
//   scan:TEXT           look for TEXT in every buffer this thread can reach (hal-sim: the region)
//   import:PATH:TYPE    import(file URL of PATH) with type TYPE (js, text, bytes, json)
//   worker:PATH         new Worker(file URL of PATH)
//   readfile:PATH       Deno.readFile(PATH)
//   fetch:PATH          fetch(file URL of PATH)
import type { ProgramEnv } from "@twz/libtwz/program";
import { formatSecProt, type Mapping, parseId, TwzError } from "@twz/kernel/abi";

const PROTS: Record<string, number> = { r: 1, rw: 3, rx: 5, w: 2 };

/** Run the operations; every line is `R {"op": …, "ok": …, …}`. */
export default async function main(env: ProgramEnv, args: string[]): Promise<number> {
  const maps = new Map<string, Mapping>();
  const raw = new Map<string, Uint8Array>();
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const out = (r: Record<string, unknown>) => env.console.log("R " + JSON.stringify(r));
  for (const arg of args) {
    const [op, ...a] = arg.split(":");
    try {
      const r = await run(op!, a);
      out({ op: arg, ok: true, ...r });
    } catch (e) {
      out({
        op: arg,
        ok: false,
        code: e instanceof TwzError ? e.code : -1,
        error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
      });
    }
  }
  return 0;

  async function run(op: string, a: string[]): Promise<Record<string, unknown>> {
    const port = env.port;
    switch (op) {
      case "map": {
        const m = port.map(parseId(a[0]!), PROTS[a[1]!]!);
        maps.set(a[0]!, m);
        return { prot: m.prot, size: m.bytes.length };
      }
      case "read":
        return { text: dec.decode(port.read(parseId(a[0]!), Number(a[1]), Number(a[2]))) };
      case "write":
        port.write(parseId(a[0]!), Number(a[1]), enc.encode(a[2]!));
        return {};
      case "view": {
        const m = maps.get(a[0]!);
        if (m === undefined) throw new Error("not mapped");
        const bytes = m.bytes;
        const off = Number(a[1]), len = Number(a[2]);
        return {
          length: bytes.length,
          text: bytes.length >= off + len ? dec.decode(bytes.slice(off, off + len)) : "",
        };
      }
      case "keep": {
        const m = maps.get(a[0]!);
        if (m === undefined) throw new Error("not mapped");
        raw.set(a[0]!, new Uint8Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.length));
        return { length: m.bytes.length };
      }
      case "kept": {
        const bytes = raw.get(a[0]!);
        if (bytes === undefined) throw new Error("nothing kept");
        const off = Number(a[1]), len = Number(a[2]);
        return {
          length: bytes.length,
          text: bytes.length >= off + len ? dec.decode(bytes.slice(off, off + len)) : "",
        };
      }
      case "rawwrite": {
        const m = maps.get(a[0]!);
        if (m === undefined) throw new Error("not mapped");
        m.bytes.set(enc.encode(a[2]!), Number(a[1]));
        return {};
      }
      case "twzread": {
        const obj = env.twz.open(parseId(a[0]!), { write: false });
        return { text: dec.decode(obj.read(Number(a[1]), Number(a[2]))) };
      }
      case "delete":
        return { count: port.delete(parseId(a[0]!)) };
      case "copy": {
        const id = port.create({
          size: 4096,
          lifetime: "volatile",
          sources: [{ id: parseId(a[0]!), srcOffset: 0, dstOffset: 0, length: 64 }],
        });
        port.delete(id);
        return {};
      }
      case "access": {
        const r = await port.access(parseId(a[0]!));
        return { prot: formatSecProt(r.prot), reasons: r.reasons.map((x) => x.why) };
      }
      case "newkey": {
        const ids = await port.keyCreate();
        let readable = false, pkcs8 = false;
        try {
          pkcs8 = port.read(ids.privateId, 256, 1)[0] === 0x30;
          readable = true;
        } catch { /* not readable */ }
        return {
          kuid: ids.kuid.toString(16).padStart(32, "0"),
          privateId: ids.privateId.toString(16).padStart(32, "0"),
          readable,
          pkcs8,
        };
      }
      case "contexts":
        return { contexts: port.contexts().map((c) => c.toString(16)) };
      case "epoch":
        return { epoch: port.epoch === undefined ? null : Atomics.load(port.epoch, 0) };
      case "step": {
        const sync = parseId(a[0]!);
        const k = Number(a[1]);
        const m = maps.get(a[0]!) ?? port.map(sync, 3);
        maps.set(a[0]!, m);
        const v = new DataView(m.bytes.buffer, m.bytes.byteOffset, 8);
        v.setUint32(0, k, true);
        for (let i = 0; v.getUint32(4, true) < k; i++) {
          if (i > 6000) throw new Error(`step ${k}: nobody said go`);
          port.threadSync([{
            op: "sleep",
            id: sync,
            offset: 4,
            value: v.getUint32(4, true),
            timeoutMs: 10,
          }]);
        }
        return {};
      }
      case "serve":
        port.gateServe(parseId(a[0]!));
        return {};
      case "answer": {
        const seen: string[] = [];
        for (const n = Number(a[0]); seen.length < n;) {
          const call = port.gateReceive(20_000);
          if (call === null) throw new Error(`no gate call (${seen.length} answered)`);
          const text = `echo:${call.offset}:${dec.decode(call.args)}:${call.callerTid}:` +
            call.callerContexts.map((c) => c.toString(16)).join(",");
          seen.push(text);
          port.gateReply(call.call, enc.encode(text));
        }
        return { seen };
      }
      case "call":
        return {
          reply: dec.decode(port.gateCall(parseId(a[0]!), Number(a[1]), enc.encode(a[2] ?? ""))),
        };
      case "scan": {
        const needle = enc.encode(a.join(":"));
        const buffers = new Set<ArrayBufferLike>();
        for (const m of maps.values()) buffers.add(m.bytes.buffer);
        // An object of its own (persistent: on hal-sim its bytes are a window
        // of the region; a volatile one has a buffer of its own).
        const own = port.create({ size: 4096 });
        buffers.add(port.map(own, 3).bytes.buffer);
        let found = -1;
        let total = 0;
        for (const b of buffers) {
          const bytes = new Uint8Array(b);
          total += bytes.length;
          const at = indexOf(bytes, needle);
          if (at >= 0) found = at;
        }
        port.delete(own);
        return { found: found >= 0, bytes: total };
      }
      case "import": {
        const url = "file://" + a[0]!;
        const type = a[1]!;
        const m = type === "js" ? await import(url) : await import(url, { with: { type } });
        return { loaded: typeof m.default === "string" ? m.default.length : String(m.default) };
      }
      case "worker": {
        const text = await new Promise<string>((resolve) => {
          const w = new Worker("file://" + a[0]!, { type: "module" });
          const end = (t: string) => {
            w.terminate();
            resolve(t);
          };
          w.onmessage = (e) => end(`message ${String(e.data)}`);
          w.onerror = (e) => {
            e.preventDefault();
            end(`error ${e.message}`);
          };
          setTimeout(() => end("timeout"), 5000);
        });
        if (text.startsWith("error")) throw new Error(text);
        return { text };
      }
      case "fetch":
        return { length: (await (await fetch("file://" + a[0]!)).arrayBuffer()).byteLength };
      case "readfile":
        return { length: (await Deno.readFile(a[0]!)).length };
    }
    throw new Error(`unknown operation ${op}`);
  }
}

/** Where `needle` starts in `hay`, or -1. */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  for (
    let i = hay.indexOf(first);
    i >= 0 && i <= hay.length - needle.length;
    i = hay.indexOf(first, i + 1)
  ) {
    let k = 1;
    while (k < needle.length && hay[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}
