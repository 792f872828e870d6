// Helpers for the thread manager's tests: hand-written programs (ES modules
// that use the port from connectPort directly) stored as code objects.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// The bundler `twz run` uses (packages/cli/_bundle.ts); a test-only dependency here.
// deno-lint-ignore no-import-prefix
import * as esbuild from "npm:esbuild@^0.28";
import { Kernel, type ObjID, Prot } from "@twz/kernel";
import type { Hal } from "@twz/kernel/hal";
import { plugin as pmem } from "@twz/hal-pmem";
import { encodeCodeObject } from "@twz/kernel/threads";

const pmemInfo = pmem.describe();
/** Whether hal-pmem tests are skipped here (libpmem2 missing, and not under CI). */
export const PMEM_IGNORE: boolean = !pmemInfo.available && Deno.env.get("CI") !== "true";
/** A suffix for hal-pmem test names saying why they are skipped ("" when they run). */
export const PMEM_SKIP: string = pmemInfo.available ? "" : ` (skipped: ${pmemInfo.reason})`;

/** Run `fn` on a kernel booted on a new 16 MiB hal-pmem image (removed after). */
export async function withPmem(fn: (kernel: Kernel, hal: Hal) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "twz-threads-test-" });
  try {
    const hal = await pmem.open({ image: join(dir, "t.img"), size: 16 << 20, create: true });
    const kernel = Kernel.boot(hal);
    try {
      await fn(kernel, hal);
    } finally {
      kernel.shutdown();
      hal.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Where `program` imports the ABI from (bundled in: a program's module is one file). */
const ABI = "../abi/mod.ts";
const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * Bundle each program text into one ES module (the ABI inlined, `node:*`
 * left external), as `twz run` does with esbuild.
 */
export async function bundle<K extends string>(
  programs: Record<K, string>,
): Promise<Record<K, string>> {
  const out = {} as Record<K, string>;
  try {
    for (const [k, text] of Object.entries(programs) as [K, string][]) {
      const r = await esbuild.build({
        stdin: { contents: text, resolveDir: HERE, loader: "js", sourcefile: `${k}.js` },
        bundle: true,
        format: "esm",
        platform: "neutral",
        write: false,
        external: ["node:*"],
        logLevel: "silent",
      });
      out[k] = r.outputFiles[0]!.text;
    }
  } finally {
    await esbuild.stop();
  }
  return out;
}

/**
 * A program whose start function connects the port and runs `body` (an
 * async function body with `abi`, `port`, `init` and `args` in scope). What
 * `body` returns is the exit code.
 */
export function program(body: string): string {
  return `import * as abi from ${JSON.stringify(ABI)};
export default async function start(init) {
  const port = abi.connectPort(init);
  const args = init.args;
  ${body}
}
`;
}

/** Store module `text` as an immutable code object (prot r-x); returns its ID. */
export function installCode(
  kernel: Kernel,
  text: string,
  prot: number = Prot.Read | Prot.Exec,
): ObjID {
  const bytes = encodeCodeObject(text);
  const src = kernel.create({ size: bytes.length, lifetime: "volatile" });
  kernel.write(src, 0, bytes);
  const code = kernel.create({
    size: bytes.length,
    prot,
    sources: [{ id: src, srcOffset: 0, dstOffset: 0, length: bytes.length }],
  });
  kernel.delete(src);
  return code;
}

/** Wait (polling, no timing asserted) until `pred()` holds. */
export async function until(pred: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
