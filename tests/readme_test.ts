// The README's references resolve: every relative link `](path)` (and its
// `#anchor`, when it names a heading of a Markdown file) and every
// repository path it mentions (`docs/…`, `examples/…`, `tools/…`,
// `packages/…`, `tests/…`) exists. And its shell session runs as printed.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { scratchDirs } from "@twz/kernel/hal/testing";
import { twz } from "./_twz.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const README = join(ROOT, "README.md");

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes. */
function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/[`*_]/g, "").replace(/[^\p{L}\p{N} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors of a Markdown file's headings (outside code blocks). */
function anchors(path: string): Set<string> {
  const out = new Set<string>();
  let fence = false;
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const m = !fence && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(anchorOf(m[1]!));
  }
  return out;
}

/** Problems with the links and paths of the Markdown file at `path`. */
export function brokenReferences(path: string): string[] {
  const text = Deno.readTextFileSync(path);
  const dir = dirname(path);
  const problems: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
    const [file = "", anchor] = target.split("#", 2);
    const full = file === "" ? path : join(dir, file);
    if (!existsSync(full)) {
      problems.push(`link ${target}: no such file`);
      continue;
    }
    if (anchor !== undefined && full.endsWith(".md") && !anchors(full).has(anchor)) {
      problems.push(`link ${target}: no heading #${anchor}`);
    }
  }
  const paths = text.matchAll(
    /(?<![\w./-])((?:docs|examples|tools|packages|tests)\/[\w./-]*[\w/])/g,
  );
  for (const m of paths) {
    const p = m[1]!;
    if (!existsSync(join(ROOT, p))) problems.push(`path ${p}: no such file or folder`);
  }
  return [...new Set(problems)];
}

Deno.test("README.md: every relative link and every repository path it mentions exists", () => {
  assert.deepEqual(brokenReferences(README), []);
});

Deno.test("brokenReferences() finds a missing file, a missing heading and a missing path", () => {
  const dir = Deno.makeTempDirSync({ prefix: "twz-readme-" });
  try {
    const md = join(dir, "x.md");
    Deno.writeTextFileSync(
      md,
      "# Top `one`\n\n[ok](#top-one) [gone](nope.md) [bad](#nowhere) [web](https://x.y)\n" +
        "see docs/NOT_THERE.md and examples/none.ts\n",
    );
    assert.deepEqual(brokenReferences(md), [
      "link nope.md: no such file",
      "link #nowhere: no heading #nowhere",
      "path docs/NOT_THERE.md: no such file or folder",
      "path examples/none.ts: no such file or folder",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** One `$` command of a console block: its `twz` arguments, stdin and what it prints. */
interface ConsoleStep {
  args: string[];
  input: string;
  stdout: string[];
  stderr: string[];
}

/**
 * The steps of the first `console` block under the heading `heading`: a `$`
 * line runs `npx -y deno@2.9.6 task twz ARGS`, its stdin from a leading
 * `printf '…' |` or from the `twz> ` lines after it; other lines are its
 * output (`twz: ` lines on stderr; the interactive banner is not printed
 * without a terminal).
 */
function consoleSteps(text: string, heading: string): ConsoleStep[] {
  const at = text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `the README has "${heading}"`);
  const block = /```console\n([\s\S]*?)```/.exec(text.slice(at));
  assert.ok(block, `a console block under "${heading}"`);
  const steps: ConsoleStep[] = [];
  for (const line of block[1]!.split("\n").filter((l) => l.length > 0)) {
    const cmd = /^\$ (?:printf '([^']*)' \| )?npx -y deno@2\.9\.6 task twz (.*)$/.exec(line);
    if (cmd) {
      steps.push({
        args: cmd[2]!.split(" "),
        input: (cmd[1] ?? "").replaceAll("\\n", "\n"),
        stdout: [],
        stderr: [],
      });
      continue;
    }
    const step = steps.at(-1);
    assert.ok(step, `a command before "${line}"`);
    if (line.startsWith("twz> ")) step.input += line.slice(5) + "\n";
    else if (line.startsWith("twz: ")) step.stderr.push(line);
    else if (!line.startsWith("Twizzler shell.")) step.stdout.push(line);
  }
  return steps;
}

/** Timings and object IDs differ from run to run. */
const normal = (line: string) =>
  line.replace(/ in \d+(\.\d+)? ms\b/, " in N ms").replace(/\b[0-9a-f]{32}\b/g, "ID");

Deno.test("README.md: the shell session runs as printed", async () => {
  const steps = consoleSteps(Deno.readTextFileSync(README), "## A shell session");
  assert.ok(steps.length >= 2 && steps.every((s) => s.stdout.length + s.stderr.length > 0));
  const cwd = scratchDirs("twz-readme-")();
  for (const step of steps) {
    const r = await twz(step.args, step.input, { cwd });
    assert.equal(r.code, 0, r.stderr);
    const got = (s: string) => s.split("\n").filter((l) => l.length > 0).map(normal);
    assert.deepEqual(
      got(r.stdout),
      step.stdout.map(normal),
      `stdout of twz ${step.args.join(" ")}`,
    );
    assert.deepEqual(
      got(r.stderr),
      step.stderr.map(normal),
      `stderr of twz ${step.args.join(" ")}`,
    );
  }
});
