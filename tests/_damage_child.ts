// A child process that runs damage-campaign cases (see _damage.ts) for
// _damage_pool.ts: a case that hangs (a loop over a damaged count) is stopped
// by killing the process. A process rather than a Worker because `deno test`
// type-checks every Worker's module graph when it starts (seconds each time);
// `deno run` does not.
//
//   deno run -A tests/_damage_child.ts FIXTURE_DIR
//
// Reads one JSON request per line on stdin ({"name", "pmemDir"?, "cli"?}), writes
// JSON lines on stdout: {"type":"phase",...} while running, then
// {"type":"result", result} or {"type":"error", message}.
import {
  bootAndProbe,
  buildCases,
  type Case,
  type CaseResult,
  cliRepair,
  emptyResult,
  type Fixture,
  loadFixture,
  objectsChanged,
  runCase,
  threadCpuMs,
} from "./_damage.ts";

let serial = 0;

/**
 * Boot the damaged image as a file through hal-pmem (libpmem2), probe the
 * running system, and check the file afterwards: untouched when refused,
 * every intact object's bytes unchanged when booted.
 */
async function runOnPmem(fx: Fixture, c: Case, dir: string, phase: (p: string) => void) {
  const { plugin } = await import("@twz/hal-pmem");
  const r: CaseResult = emptyResult(c.name);
  const t0 = performance.now();
  const image = fx.bytes.slice();
  c.apply(image);
  const path = `${dir}/case-${Deno.pid}-${serial++}.img`;
  Deno.writeFileSync(path, image);
  try {
    phase("boot");
    const hal = await plugin.open({ image: path, create: false });
    try {
      bootAndProbe(fx, c, image, hal, r, phase);
    } finally {
      hal.close();
    }
    const after = Deno.readFileSync(path);
    if (r.boot === "refused") {
      if (after.some((b, i) => b !== image[i])) r.failures.push("a refused boot changed the file");
    } else {
      // (The probes' kv put writes the kv store and the log; the run checked
      // both before it. C goes when P is deleted, as its tie says.)
      const written = [fx.ids.c, fx.ids.kv, fx.ids.txlog];
      for (const o of objectsChanged(fx, image, after)) {
        if (c.damaged.includes(o.id) || written.includes(o.id)) continue;
        r.failures.push(`intact object ${o.label}: its bytes changed in the file`);
      }
    }
  } finally {
    Deno.removeSync(path);
  }
  r.ms = performance.now() - t0;
  return r;
}

const fixtureDir = Deno.args[0]!;
const fixture = loadFixture(fixtureDir);
const cases = new Map(buildCases(fixture).map((c) => [c.name, c]));
const enc = new TextEncoder();
const send = (m: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(m) + "\n"));
send({ type: "ready" });

let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const m = JSON.parse(line) as { name: string; pmemDir?: string; cli?: boolean };
    const c = cases.get(m.name);
    if (!c) {
      send({ type: "error", message: `no case ${m.name}` });
      continue;
    }
    const phase = (p: string) => send({ type: "phase", phase: p });
    try {
      let result: CaseResult;
      if (m.pmemDir !== undefined) result = await runOnPmem(fixture, c, m.pmemDir, phase);
      else {
        const t0 = performance.now(), cpu0 = threadCpuMs();
        result = runCase(fixture, c, { phase });
        if (m.cli) {
          // The files go in the fixture's directory, which the pool removes.
          phase("cli-repair");
          cliRepair(fixture, c, fixtureDir, result, `case-${Deno.pid}-${serial++}`);
          result.ms = performance.now() - t0;
          const cpu1 = threadCpuMs();
          if (cpu0 !== undefined && cpu1 !== undefined) result.cpuMs = cpu1 - cpu0;
        }
      }
      send({ type: "result", result });
    } catch (e) {
      send({ type: "error", message: String((e as Error)?.stack ?? e) });
    }
  }
}
