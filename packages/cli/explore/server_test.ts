import assert from "node:assert/strict";
import { formatId, type ObjID } from "@twz/kernel/abi";
import { ExplorerModel, openSystem } from "./model.ts";
import { type ExplorerServer, startExplorer } from "./server.ts";
import { type Fixture, KV, makeFixture, MAP } from "./_fixture.ts";

const hex = formatId;

/** Run `fn` against an explorer over a fresh fixture image. */
async function withServer(
  fn: (s: ExplorerServer, f: Fixture) => Promise<void>,
  o: { write?: boolean; context?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const f = await makeFixture(`${dir}/twz.img`);
    const sys = await openSystem({ image: f.image, write: o.write === true });
    try {
      const context = o.context ? sys.port.ctxCreate() : null;
      const server = await startExplorer(new ExplorerModel(sys, { context }), {
        write: o.write === true,
        pollMs: 50,
      });
      try {
        await fn(server, f);
      } finally {
        await server.close();
      }
    } finally {
      sys.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** GET (or POST) with the token; the status and the parsed JSON. */
async function api(
  s: ExplorerServer,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
  const res = await fetch(`http://127.0.0.1:${s.port}${path}`, {
    ...init,
    headers: { "X-Twz-Token": s.token, ...(init.headers ?? {}) },
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), text };
}

/** One raw HTTP/1.1 request (headers exactly as given); the status line's code and the body. */
async function raw(s: ExplorerServer, lines: string[]): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: s.port });
  try {
    await conn.write(
      new TextEncoder().encode([...lines, "Connection: close", "", ""].join("\r\n")),
    );
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

const rowOf = (rows: unknown, id: ObjID) =>
  (rows as { id: string }[]).find((r) => r.id === hex(id)) as Record<string, unknown>;

Deno.test("explorer server refuses a request without the token, with a wrong one, and answers with it", () =>
  withServer(async (s) => {
    assert.match(s.token, /^[0-9a-f]{32}$/);
    assert.equal(s.url, `http://127.0.0.1:${s.port}/?token=${s.token}`);
    const none = await fetch(`http://127.0.0.1:${s.port}/api/system`);
    assert.equal(none.status, 403);
    assert.match((await none.json()).error, /token/);
    const wrong = await fetch(`http://127.0.0.1:${s.port}/api/system?token=${"0".repeat(32)}`);
    assert.equal(wrong.status, 403);
    await wrong.body?.cancel();
    const page = await fetch(`http://127.0.0.1:${s.port}/`);
    assert.equal(page.status, 403);
    assert.match(await page.text(), /^refused: the token/);
    const byQuery = await fetch(`http://127.0.0.1:${s.port}/api/system?token=${s.token}`);
    assert.equal(byQuery.status, 200);
    assert.equal((await byQuery.json()).readOnly, true);
    const html = await fetch(s.url);
    assert.equal(html.status, 200);
    const text = await html.text();
    assert.ok(text.includes(`<meta name="twz-token" content="${s.token}">`), text.slice(0, 400));
  }));

Deno.test("explorer server refuses a foreign Origin and a foreign Host", () =>
  withServer(async (s) => {
    const get = (extra: string[], host = `127.0.0.1:${s.port}`) =>
      raw(s, [`GET /api/system?token=${s.token} HTTP/1.1`, `Host: ${host}`, ...extra]);
    assert.equal((await get([])).status, 200);
    assert.equal((await get([], `localhost:${s.port}`)).status, 200);
    assert.equal((await get([`Origin: http://127.0.0.1:${s.port}`])).status, 200);
    const origin = await get(["Origin: http://evil.example"]);
    assert.equal(origin.status, 403);
    assert.equal(JSON.parse(origin.body).error, 'refused: foreign Origin "http://evil.example"');
    assert.equal((await get([`Origin: http://127.0.0.1:${s.port + 1}`])).status, 403);
    assert.equal((await get(["Origin: null"])).status, 403);
    const host = await get([], `evil.example:${s.port}`);
    assert.equal(host.status, 403);
    assert.match(JSON.parse(host.body).error, /foreign Host/);
    assert.equal((await get([], "127.0.0.1")).status, 403, "the port must match too");
  }));

Deno.test("explorer server refuses writes without --write", () =>
  withServer(async (s, f) => {
    const r = await api(s, `/api/object/${hex(f.a)}/bytes`, {
      method: "POST",
      body: JSON.stringify({ offset: 256, hex: "2a000000" }),
    });
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: "the explorer is read-only (start it with --write)" });
    const after = await api(s, `/api/object/${hex(f.a)}/bytes?offset=256&length=4`);
    assert.equal(after.body.hex, "01000000");
  }));

Deno.test("explorer server with --write writes bytes and tells the event stream", () =>
  withServer(async (s, f) => {
    const events = await fetch(
      `http://127.0.0.1:${s.port}/api/events?token=${s.token}&watch=${hex(f.a)}`,
    );
    assert.equal(events.status, 200);
    assert.match(events.headers.get("content-type")!, /^text\/event-stream/);
    const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const change = (async () => {
      while (!seen.includes("event: change")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!seen.includes("event: change"), "no change before the write");
    const r = await api(s, `/api/object/${hex(f.a)}/bytes`, {
      method: "POST",
      body: JSON.stringify({ offset: 256, hex: "2a000000" }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.hex, "2a000000");
    const timeout = setTimeout(() => reader.cancel(), 5000);
    await change;
    clearTimeout(timeout);
    assert.match(seen, /event: change\ndata: \{"fingerprint":"[^"]+"\}\n\n/);
    await reader.cancel();
    assert.equal(
      (await api(s, `/api/object/${hex(f.a)}/bytes?offset=256&length=4`)).body.hex,
      "2a000000",
    );
    const bad = await api(s, `/api/object/${hex(f.a)}/bytes`, {
      method: "POST",
      body: JSON.stringify({ offset: 4095, hex: "0102" }),
    });
    assert.equal(bad.status, 400);
    const notJson = await api(s, `/api/object/${hex(f.a)}/bytes`, { method: "POST", body: "{" });
    assert.equal(notJson.status, 400);
  }, { write: true }));

Deno.test("explorer server: unknown IDs 404, bad parameters 400, a damaged object 422, and it goes on", () =>
  withServer(async (s, f) => {
    const unknown = await api(s, `/api/object/${hex(0x5fn << 64n)}`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(Object.keys(unknown.body), ["error"]);
    assert.equal(unknown.body.error, `no object ${hex(0x5fn << 64n)}`);
    assert.ok(!unknown.text.includes("\n"), "one line");
    assert.equal((await api(s, "/api/object/xyz")).status, 400);
    assert.equal((await api(s, `/api/object/${hex(f.a)}/bytes?offset=4096`)).status, 400);
    assert.equal((await api(s, `/api/object/${hex(f.a)}/bytes?offset=99999999`)).status, 400);
    assert.equal((await api(s, `/api/object/${hex(f.a)}/bytes?offset=-1`)).status, 400);
    assert.equal((await api(s, `/api/object/${hex(f.a)}/bytes?offset=abc`)).status, 400);
    assert.equal((await api(s, "/api/objects?limit=100000")).status, 400);
    assert.equal((await api(s, "/api/names?path=/nope")).status, 404);
    assert.equal((await api(s, `/api/graph/${hex(f.a)}?depth=9`)).status, 400);
    assert.equal((await api(s, "/api/nothing")).status, 404);
    const damaged = await api(s, `/api/collection/${hex(f.bad)}`);
    assert.equal(damaged.status, 422);
    assert.match(damaged.body.error as string, /damaged/);
    assert.ok(!damaged.text.includes("\n"));
    assert.equal((await api(s, `/api/collection/${hex(f.a)}`)).status, 400);
    const after = await api(s, "/api/system");
    assert.equal(after.status, 200);
    assert.equal((await api(s, `/api/collection/${hex(f.kv)}`)).status, 200);
  }));

Deno.test("explorer server answers objects, object, bytes, names, collections, graph and threads", () =>
  withServer(async (s, f) => {
    const system = (await api(s, "/api/system")).body;
    assert.equal(system.context, "admin (the shell's session)");
    const objects = (await api(s, "/api/objects?offset=0&limit=1000")).body;
    assert.equal(objects.total, system.objects);
    const a = rowOf(objects.rows, f.a);
    assert.deepEqual(
      [a.name, a.size, a.lifetime, a.prot, a.fot, a.ties, a.access],
      ["/list/a", 4096, "persistent", "rw-", 1, 1, "rw-"],
    );
    assert.equal(rowOf(objects.rows, f.kv).kind, "btree");
    assert.equal(rowOf(objects.rows, f.map).kind, "hashmap");
    const filtered = (await api(s, "/api/objects?filter=%2Flist%2F&sort=name")).body;
    assert.deepEqual((filtered.rows as { name: string }[]).map((r) => r.name), [
      "/list/a",
      "/list/b",
      "/list/c",
    ]);

    // Follow the list: a's FOT names b, b's names c; the bytes hold 1, 2, 3.
    let id = f.a;
    for (const [i, next] of [[1, f.b], [2, f.c]] as const) {
      const view = (await api(s, `/api/object/${hex(id)}`)).body;
      const fot = view.fot as { target: string; targetName: string }[];
      assert.equal(fot[0]?.target, hex(next));
      assert.equal(fot[0]?.targetName, `/list/${"abc"[i]}`);
      const bytes = (await api(s, `/api/object/${hex(id)}/bytes?offset=256&length=8`)).body;
      // value (u32), then the label, NUL-padded: "one", "two".
      assert.equal(bytes.hex, `0${i}000000` + (i === 1 ? "6f6e6500" : "74776f00"));
      id = next;
    }
    const typed = (await api(s, `/api/object/${hex(f.a)}/bytes?offset=0&length=4096`)).body;
    const rec = (typed.records as {
      struct: string;
      fields: { name: string; value: unknown; ptr?: { target: string } }[];
    }[])[0]!;
    assert.equal(rec.struct, "ListNode");
    assert.deepEqual(rec.fields.map((x) => [x.name, x.value]).slice(0, 2), [["value", 1], [
      "label",
      "one",
    ]]);
    assert.equal(rec.fields[2]?.ptr?.target, hex(f.b));
    assert.equal((await api(s, `/api/object/${hex(f.a)}`)).body.kind, "struct:ListNode");
    const last = (await api(s, `/api/object/${hex(f.c)}/bytes?offset=0&length=1024`)).body;
    assert.deepEqual([last.offset, last.length, last.size], [0, 1024, 4096]);
    assert.equal((last.hex as string).slice(512, 520), "03000000");

    const names = (await api(s, "/api/names?path=%2Flist")).body;
    assert.deepEqual(names, {
      path: "/list",
      entries: ["a", "b", "c"].map((n, i) => ({
        name: n,
        id: hex([f.a, f.b, f.c][i]!),
        dir: false,
      })),
    });

    const kv = (await api(s, `/api/collection/${hex(f.kv)}?offset=0&limit=50`)).body;
    assert.deepEqual(kv, {
      id: hex(f.kv),
      kind: "btree",
      codecs: "string/string",
      total: 3,
      offset: 0,
      rows: Object.entries(KV).map(([key, value]) => ({ key, value })),
    });
    const map = (await api(s, `/api/collection/${hex(f.map)}`)).body;
    assert.equal(map.codecs, "string/int");
    assert.deepEqual(
      Object.fromEntries(
        (map.rows as { key: string; value: string }[]).map((r) => [r.key, +r.value]),
      ),
      MAP,
    );

    const graph = (await api(s, `/api/graph/${hex(f.a)}?depth=2`)).body;
    assert.deepEqual(
      (graph.nodes as { id: string }[]).map((n) => n.id),
      [f.a, f.b, f.tied, f.c].map(hex),
    );
    assert.deepEqual(
      (graph.edges as { from: string; to: string; kind: string }[]).map((e) => [
        e.from,
        e.to,
        e.kind,
      ]),
      [[hex(f.a), hex(f.b), "fot"], [hex(f.tied), hex(f.a), "tie"], [hex(f.b), hex(f.c), "fot"]],
    );
    assert.equal(graph.truncated, false);
    const one = (await api(s, `/api/graph/${hex(f.a)}?depth=1`)).body;
    assert.equal((one.nodes as unknown[]).length, 3);
    const tied = (await api(s, `/api/object/${hex(f.tied)}`)).body;
    assert.deepEqual([tied.tiedTo, tied.dependentIds], [[hex(f.a)], []]);

    assert.deepEqual((await api(s, "/api/threads")).body, { threads: [] });
  }));

Deno.test("explorer over a running twz boot's control socket sees what the shell does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  const f = await makeFixture(`${dir}/twz.img`);
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.RUST_BACKTRACE;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../main.ts", import.meta.url).pathname,
      "boot",
      "--image",
      f.image,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    env,
    clearEnv: true,
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const ask = async (line: string, answer: RegExp) => {
    await writer.write(new TextEncoder().encode(`${line}\n`));
    while (!answer.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`twz boot ended before answering ${line}: ${out}`);
      out += value;
    }
  };
  try {
    await ask("kv count", /^3\b/m); // the shell answers: its socket listens
    const sys = await openSystem({ image: f.image });
    try {
      assert.equal(sys.source, "socket");
      const server = await startExplorer(new ExplorerModel(sys), { pollMs: 50 });
      try {
        const system = (await api(server, "/api/system")).body;
        assert.deepEqual([system.source, system.writable], ["socket", false]);
        const kv = `/api/collection/${hex(f.kv)}`;
        assert.equal((await api(server, kv)).body.total, 3);
        await ask("kv put delta 4", /\n/);
        await ask("kv count", /^4\b/m);
        const after = (await api(server, kv)).body;
        assert.equal(after.total, 4);
        assert.deepEqual((after.rows as { key: string }[]).map((r) => r.key), [
          "alpha",
          "beta",
          "delta",
          "gamma",
        ]);
        const post = await api(server, `/api/object/${hex(f.a)}/bytes`, {
          method: "POST",
          body: JSON.stringify({ offset: 256, hex: "00" }),
        });
        assert.equal(post.status, 403, "read-only over the socket too");
      } finally {
        await server.close();
      }
    } finally {
      sys.close();
    }
  } finally {
    await writer.close().catch(() => {});
    await child.status;
    await reader.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

/** `twz explore ARGS` in a subprocess (through `main` of command.ts). */
function explore(args: string[]): Deno.ChildProcess {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.RUST_BACKTRACE;
  const command = new URL("./command.ts", import.meta.url).href;
  return new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { main } from "${command}"; Deno.exit(await main(${JSON.stringify(args)}));`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: true,
  }).spawn();
}

Deno.test("twz explore prints its URL, serves until SIGTERM, then closes the image", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const f = await makeFixture(`${dir}/twz.img`);
    const child = explore(["--image", f.image]);
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    const m =
      /^twz: explorer on (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]{32})) \(read-only; Ctrl-C stops it\)\n$/
        .exec(out);
    assert.ok(m, out);
    const res = await fetch(`http://127.0.0.1:${m[2]}/api/names?path=%2Flist&token=${m[3]}`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).entries.length, 3);
    child.kill("SIGTERM");
    const status = await child.status;
    await reader.cancel().catch(() => {});
    const err = await new Response(child.stderr).text();
    assert.equal(status.code, 0, err);
    // The image is free again: a writable open succeeds.
    const sys = await openSystem({ image: f.image, write: true });
    assert.equal(sys.source, "boot");
    sys.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("twz explore refuses a missing image with one line (exit 3) and creates none", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twz-explore-" });
  try {
    const out = await explore(["--image", `${dir}/none.img`]).output();
    assert.equal(out.code, 3);
    assert.equal(new TextDecoder().decode(out.stderr), `twz: no image at ${dir}/none.img\n`);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("explorer server under a context: what it may not read is no access, and refused", () =>
  withServer(async (s, f) => {
    const system = (await api(s, "/api/system")).body;
    assert.match(system.context as string, /^context [0-9a-f]{32}$/);
    const rows = (await api(s, "/api/objects?limit=1000")).body.rows;
    assert.equal(rowOf(rows, f.secret).access, "no access");
    assert.equal(rowOf(rows, f.a).access, "rw-");
    assert.equal(rowOf(rows, f.a).kind, "struct:ListNode");
    assert.equal((await api(s, `/api/object/${hex(f.secret)}`)).body.access, "no access");
    const bytes = await api(s, `/api/object/${hex(f.secret)}/bytes`);
    assert.equal(bytes.status, 403);
    assert.match(bytes.body.error as string, /may not read object/);
    const graph = (await api(s, `/api/graph/${hex(f.a)}?depth=2`)).body;
    assert.equal((graph.nodes as unknown[]).length, 4);
  }, { write: true, context: true }));
