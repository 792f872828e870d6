/**
 * The graph view's layout: new neighbours go on rings around the expanded
 * node, stay apart, never move what was placed before, and 1,000 of them are
 * placed in a few milliseconds.
 */
import assert from "node:assert/strict";
import { GraphLayout } from "./layout.ts";

function minDistance(l: GraphLayout, ids: string[]): number {
  let min = Infinity;
  for (let i = 0; i < ids.length; i++) {
    const a = l.positions.get(ids[i]!)!;
    for (let j = i + 1; j < ids.length; j++) {
      const b = l.positions.get(ids[j]!)!;
      min = Math.min(min, Math.hypot(a.x - b.x, a.y - b.y));
    }
  }
  return min;
}

Deno.test("GraphLayout.expand() places 1,000 neighbours apart, around the node, quickly", () => {
  const l = new GraphLayout({ spacing: 30 });
  const ids = Array.from({ length: 1000 }, (_, i) => `n${i}`);
  const t0 = performance.now();
  const fresh = l.expand("hub", ids);
  const ms = performance.now() - t0;
  assert.equal(fresh.length, 1000);
  assert.equal(l.size, 1001);
  assert.ok(ms < 250, `took ${ms.toFixed(1)} ms`);
  assert.ok(minDistance(l, ["hub", ...ids]) >= 30 * 0.75, "nodes overlap");
  // Rings: within ~20 rings of the hub, not scattered.
  const hub = l.positions.get("hub")!;
  for (const id of ids) {
    const p = l.positions.get(id)!;
    assert.ok(Math.hypot(p.x - hub.x, p.y - hub.y) < 30 * 24, `${id} far from the hub`);
  }
});

Deno.test("GraphLayout.expand() moves no node placed before, skips known ones", () => {
  const l = new GraphLayout({ spacing: 30 });
  l.expand("a", ["b", "c", "d"]);
  const before = new Map([...l.positions].map(([id, p]) => [id, { ...p }]));
  const fresh = l.expand("b", ["a", "c", "e", "f", "e"]);
  assert.deepEqual(fresh, ["e", "f"]);
  for (const [id, p] of before) assert.deepEqual(l.positions.get(id), p, `${id} moved`);
  assert.ok(minDistance(l, [...l.positions.keys()]) >= 30 * 0.75, "nodes overlap");
  // Few neighbours go on the side away from the rest of the graph.
  const a = l.positions.get("a")!;
  const b = l.positions.get("b")!;
  for (const id of ["e", "f"]) {
    const p = l.positions.get(id)!;
    assert.ok(
      Math.hypot(p.x - a.x, p.y - a.y) > Math.hypot(b.x - a.x, b.y - a.y),
      `${id} placed towards the rest of the graph`,
    );
  }
});

Deno.test("GraphLayout.expand() keeps a crowded neighbourhood apart", () => {
  const l = new GraphLayout({ spacing: 30 });
  l.expand("a", Array.from({ length: 100 }, (_, i) => `a${i}`));
  // a3 sits on a's first ring: its own rings cross a's.
  const fresh = l.expand("a3", Array.from({ length: 100 }, (_, i) => `b${i}`));
  assert.equal(fresh.length, 100);
  assert.ok(minDistance(l, [...l.positions.keys()]) >= 30 * 0.75, "nodes overlap");
});

Deno.test("GraphLayout.hit() finds the node under a point", () => {
  const l = new GraphLayout({ spacing: 30 });
  l.pin("x", { x: 100, y: 100 });
  l.pin("y", { x: 200, y: 100 });
  assert.equal(l.hit({ x: 103, y: 98 }, 10), "x");
  assert.equal(l.hit({ x: 150, y: 100 }, 10), null);
  assert.deepEqual(l.bounds(), { minX: 100, minY: 100, maxX: 200, maxY: 100 });
});
