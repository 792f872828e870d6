// End-to-end: the boot line counts the libtwz transactions the boot
// replayed as well as the kernel's log records. A power failure right after
// a `kv put` was acknowledged (its log durable, its applied mark not yet)
// leaves a committed, unapplied transaction; the next boot replays it and
// says so, and the one after finds nothing to replay.
import assert from "node:assert/strict";
import { join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { twz } from "./_twz.ts";

const tmpDir = scratchDirs("twz-bootline-");
const lines = (s: string) => s.split("\n").filter((l) => l.length > 0);
const BOOTED = /^twz: booted on hal sim, image .* \d+ objects? recovered, \d+ log records?/;

/** The smallest crash point at which `script` on a copy of `image` printed its first "ok". */
async function ackPoint(image: string, script: string): Promise<number> {
  const probe = `${image}.probe`;
  const acknowledged = async (point: number) => {
    Deno.copyFileSync(image, probe);
    const r = await twz(["boot", "--image", probe, "--quiet", "--crash-at", String(point)], script);
    return lines(r.stdout).includes("ok");
  };
  let lo = 0, hi = 128;
  assert.ok(await acknowledged(hi), "the put was never acknowledged");
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (await acknowledged(mid)) hi = mid;
    else lo = mid + 1;
  }
  Deno.removeSync(probe);
  return lo;
}

Deno.test("twz boot: the boot line counts the libtwz transactions it replayed", async () => {
  const image = join(tmpDir(), "t.img");
  const base = await twz(["boot", "--image", image, "--size", "16M", "--quiet"], "kv put a 1\n");
  assert.equal(base.code, 0, base.stderr);
  const point = await ackPoint(image, "kv put b 2\n");
  const crashed = await twz(
    ["boot", "--image", image, "--quiet", "--crash-at", String(point)],
    "kv put b 2\n",
  );
  assert.equal(crashed.code, 4, crashed.stderr);
  assert.deepEqual(lines(crashed.stdout), ["ok"]);

  const next = await twz(["boot", "--image", image], "kv get b\n");
  assert.equal(next.code, 0, next.stderr);
  const line = lines(next.stderr)[0]!;
  assert.match(line, BOOTED);
  assert.match(line, / and 1 libtwz transaction \([1-9]\d* records?\) replayed in [\d.]+ ms$/);
  assert.deepEqual(lines(next.stdout), ["2"], "the replayed put is there");

  // Applied and durable now: the boot after that replays nothing.
  const again = await twz(["boot", "--image", image], "kv get b\n");
  assert.equal(again.code, 0, again.stderr);
  const quiet = lines(again.stderr)[0]!;
  assert.match(quiet, BOOTED);
  assert.doesNotMatch(quiet, /transaction/);
  assert.match(quiet, / log records? replayed in [\d.]+ ms$/);
  assert.deepEqual(lines(again.stdout), ["2"]);
});
