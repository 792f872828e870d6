import assert from "node:assert/strict";
import { BROWSER_SKIPPED_LINE, chromiumMissing, PUPPETEER_VERSION } from "@twz/cli/browser";

const SCRIPT = new URL("./browser_setup.ts", import.meta.url).pathname;

async function setup(env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

const present = (await chromiumMissing()) === undefined;

Deno.test({
  name: "browser_setup: chromium present: one line naming it and puppeteer-core's version",
  ignore: !present,
  async fn() {
    const run = await setup({ CI: "false" });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim().split("\n").length, 1, run.stdout);
    assert.match(
      run.stdout,
      new RegExp(`^browser_setup: \\S+, puppeteer-core ${PUPPETEER_VERSION}; `),
    );
  },
});

Deno.test("browser_setup: a missing browser prints the SKIPPED line and exits 0", async () => {
  const run = await setup({ TWZ_CHROMIUM: "/nonexistent/chromium", CI: "false" });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, `${BROWSER_SKIPPED_LINE}\n`);
  assert.match(run.stderr, /no browser at \/nonexistent\/chromium/);
  assert.doesNotMatch(run.stderr, /installing/, "nothing is installed for an explicit path");
});

Deno.test("browser_setup: a missing browser fails under CI=true", async () => {
  const run = await setup({ TWZ_CHROMIUM: "/nonexistent/chromium", CI: "true" });
  assert.equal(run.code, 1);
  assert.equal(run.stdout, `${BROWSER_SKIPPED_LINE}\n`);
  assert.match(run.stderr, /CI=true/);
});
