/**
 * The explorer's page bundle: it builds (once per process), is self-contained
 * (no remote URL anywhere: the page works offline), the script parses, the
 * HTML carries the token placeholder where the server puts the token, and
 * the page's code carries every test hook the browser test relies on.
 */
import assert from "node:assert/strict";
import { bundleExplorerUi, TOKEN_PLACEHOLDER } from "./bundle.ts";

Deno.test("bundleExplorerUi() builds one script, one stylesheet and the page, once", async () => {
  const ui = await bundleExplorerUi();
  assert.ok(ui.js.length > 5_000, `script of ${ui.js.length} bytes`);
  assert.ok(ui.css.length > 1_000, `stylesheet of ${ui.css.length} bytes`);
  assert.match(ui.html, /^<!doctype html>/i);
  // Minified: no line of the script is an indented statement.
  assert.ok(ui.js.split("\n").length < 20, "the script is minified");
  // It parses as a classic script (it is not run here: it needs a document).
  new Function(ui.js);
  assert.equal(await bundleExplorerUi(), ui, "built once per process");
});

Deno.test("bundleExplorerUi() makes a page that needs no network", async () => {
  const ui = await bundleExplorerUi();
  for (const [what, text] of Object.entries(ui)) {
    const remote = /\b(?:https?|wss?):\/\/[^\s"'`)]*/i.exec(text);
    assert.equal(remote, null, `${what} names a remote URL: ${remote?.[0]}`);
    assert.doesNotMatch(
      text,
      /["'(]\/\/[a-z0-9.-]+\.[a-z]{2,}\//i,
      `${what}: protocol-relative URL`,
    );
  }
  // The page loads only its own script and stylesheet (with the token: a tag cannot send a header).
  const loads = [...ui.html.matchAll(/\b(?:src|href)="([^"#]*)"/g)].map((m) => m[1]);
  assert.deepEqual(loads.sort(), [
    `/app.css?token=${TOKEN_PLACEHOLDER}`,
    `/app.js?token=${TOKEN_PLACEHOLDER}`,
    "data:,",
  ]);
});

Deno.test("bundleExplorerUi() page holds the token placeholder and the static hooks", async () => {
  const { html } = await bundleExplorerUi();
  assert.ok(html.includes(`<meta name="twz-token" content="${TOKEN_PLACEHOLDER}">`));
  for (const id of ["context", "error", "tree", "main", "facts"]) {
    assert.match(html, new RegExp(`id="${id}"`), `#${id}`);
  }
  assert.match(html, /<body data-view="">/);
  const page = html.replaceAll(TOKEN_PLACEHOLDER, "ab".repeat(16));
  assert.ok(!page.includes(TOKEN_PLACEHOLDER));
  assert.equal(page.split("abababababababababababababababab").length - 1, 3);
});

Deno.test("bundleExplorerUi() script carries every test hook of the browser test", async () => {
  const { js } = await bundleExplorerUi();
  const hooks = [
    // body[data-view] values and the ready flags
    '"objects"',
    '"object"',
    '"graph"',
    '"collection"',
    '"threads"',
    "objectsReady",
    "objectReady",
    "graphNodes",
    "twz:objects-ready",
    "twz:graph-rendered",
    // elements and attributes
    "table#objects",
    "section#object",
    "canvas#graph",
    "ul#graph-nodes",
    "table#threads",
    "table#collection",
    "data-id",
    "data-field",
    "data-ptr-target",
    "data-fot-index",
    "data-target",
    "data-path",
    "data-tid",
    "td.state",
    "td.name",
    "twzGraph",
    "nodeCount",
    // live updates and the token
    "/api/events?",
    '"change"',
    "X-Twz-Token",
    'meta[name="twz-token"]',
  ];
  for (const hook of hooks) assert.ok(js.includes(hook), `the script lacks ${hook}`);
});
