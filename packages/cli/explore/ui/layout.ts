/**
 * The graph view's layout, hand-written (no library): the graph grows one hop
 * at a time, so a force-directed layout of the whole graph on every expansion
 * would be wasted work and would move what the reader has already seen.
 * Instead, each expansion places only the new neighbours, on rings around the
 * expanded node (ring k has radius `2.2·spacing + k·spacing` and as many slots
 * as fit at `spacing` apart; a slot within 0.9·spacing of a node already
 * placed is skipped, found through a uniform grid, a spatial hash; a node with
 * few new neighbours gets them in the sector facing away from the rest of the
 * graph), then runs a short, bounded relaxation over the new nodes only (a few
 * passes pushing a new node out of any node closer than `spacing`; each pass
 * is O(new nodes), not O(n²)). Nodes already placed never move. Expanding a
 * node with 1,000 neighbours is ~20 rings and a few thousand grid look-ups:
 * a few milliseconds.
 *
 * A library (d3-force, cytoscape, sigma) was considered: each lays out the
 * whole graph iteratively and is 30–300 KiB bundled; this file is ~150 lines
 * and exactly as much layout as a hop-by-hop explorer needs. The file uses no
 * DOM, so its test runs in Deno.
 *
 * @module
 */

/** A placed node. */
export interface Point {
  /** X, in layout units (a node is ~10 units across). */
  x: number;
  /** Y, in layout units. */
  y: number;
}

/** Options of `GraphLayout`. */
export interface LayoutOptions {
  /**
   * The smallest distance between two nodes' centres.
   *
   * @default 34
   */
  spacing?: number;
  /**
   * Relaxation passes per expansion.
   *
   * @default 6
   */
  passes?: number;
}

/** Node positions, grown one expansion at a time. */
export class GraphLayout {
  /** Every placed node's position, by ID. */
  readonly positions: Map<string, Point> = new Map();
  readonly #spacing: number;
  readonly #passes: number;
  /** Spatial hash: cell key → IDs in it (cell size = spacing). */
  readonly #grid: Map<string, string[]> = new Map();
  #sumX = 0;
  #sumY = 0;

  /**
   * An empty layout.
   *
   * @param o Spacing and relaxation passes.
   */
  constructor(o: LayoutOptions = {}) {
    this.#spacing = o.spacing ?? 34;
    this.#passes = o.passes ?? 6;
  }

  /** Number of placed nodes. */
  get size(): number {
    return this.positions.size;
  }

  /**
   * Place a node at a given point (the first node: the origin). A node
   * already placed stays where it is.
   *
   * @param id The node.
   * @param p Where.
   * @returns Its position.
   */
  pin(id: string, p: Point = { x: 0, y: 0 }): Point {
    const had = this.positions.get(id);
    if (had) return had;
    const q = { x: p.x, y: p.y };
    this.positions.set(id, q);
    this.#sumX += q.x;
    this.#sumY += q.y;
    this.#cell(q).push(id);
    return q;
  }

  /**
   * Place the neighbours of `center` that are not placed yet: rings around
   * it, then a bounded relaxation of those new nodes only.
   *
   * @param center The expanded node (placed at the origin if it is not yet).
   * @param neighbours Its neighbours, in the order to place them (those
   *   already placed are skipped).
   * @returns The IDs newly placed.
   */
  expand(center: string, neighbours: Iterable<string>): string[] {
    // A centre not placed yet goes beside the graph (the origin when there is none).
    const b = this.bounds();
    const c = this.positions.get(center) ??
      this.pin(center, b ? { x: b.maxX + 3 * this.#spacing, y: (b.minY + b.maxY) / 2 } : undefined);
    const fresh: string[] = [];
    const seen = new Set<string>();
    for (const id of neighbours) {
      if (id === center || seen.has(id) || this.positions.has(id)) continue;
      seen.add(id);
      fresh.push(id);
    }
    if (fresh.length === 0) return fresh;
    // Away from the rest of the graph: the direction from its centroid to the centre.
    const others = this.positions.size - 1;
    let away = -Math.PI / 2;
    let sector = 2 * Math.PI;
    if (others > 0) {
      const gx = (this.#sumX - c.x) / others;
      const gy = (this.#sumY - c.y) / others;
      if (Math.hypot(c.x - gx, c.y - gy) > 1e-6) {
        away = Math.atan2(c.y - gy, c.x - gx);
        if (fresh.length <= 12) sector = Math.PI * 0.9;
      }
    }
    const s = this.#spacing;
    let placed = 0;
    // Ring slots in order; a slot within 0.9·spacing of a placed node is skipped.
    for (let ring = 0; placed < fresh.length; ring++) {
      const r = s * 2.2 + ring * s;
      const slots = Math.max(1, Math.floor((sector * r) / s));
      // Stagger rings so neighbours of successive rings do not line up.
      const shift = (ring % 2) * 0.5;
      // A ring with room to spare spreads what is left evenly over it.
      const left = fresh.length - placed;
      const step = left < slots && sector >= 2 * Math.PI ? slots / left : 1;
      for (let k = 0; k < slots && placed < fresh.length; k += step) {
        const i = Math.floor(k);
        const a = sector >= 2 * Math.PI
          ? away + ((i + shift) / slots) * 2 * Math.PI
          : away - sector / 2 + ((i + 0.5) / slots) * sector;
        const p = { x: c.x + r * Math.cos(a), y: c.y + r * Math.sin(a) };
        if (ring <= 200 && this.#near(p, s * 0.9)) continue;
        this.pin(fresh[placed++]!, p);
      }
    }
    this.#relax(fresh);
    return fresh;
  }

  /**
   * The node nearest to a point within `radius`, or null (a click).
   *
   * @param p The point, in layout units.
   * @param radius The largest distance that counts.
   * @returns The node's ID, or null.
   */
  hit(p: Point, radius: number): string | null {
    let best: string | null = null;
    let bestD = radius;
    const s = this.#spacing;
    const reach = Math.ceil(radius / s);
    const cx = Math.floor(p.x / s);
    const cy = Math.floor(p.y / s);
    for (let dx = -reach; dx <= reach; dx++) {
      for (let dy = -reach; dy <= reach; dy++) {
        for (const id of this.#grid.get(`${cx + dx},${cy + dy}`) ?? []) {
          const q = this.positions.get(id)!;
          const d = Math.hypot(q.x - p.x, q.y - p.y);
          if (d <= bestD) {
            bestD = d;
            best = id;
          }
        }
      }
    }
    return best;
  }

  /** The bounding box of every node (null when empty). */
  bounds(): { minX: number; minY: number; maxX: number; maxY: number } | null {
    if (this.positions.size === 0) return null;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const p of this.positions.values()) {
      minX = Math.min(minX, p.x);
      minY = Math.min(minY, p.y);
      maxX = Math.max(maxX, p.x);
      maxY = Math.max(maxY, p.y);
    }
    return { minX, minY, maxX, maxY };
  }

  /** Whether a placed node lies within `d` of `p`. */
  #near(p: Point, d: number): boolean {
    const s = this.#spacing;
    const cx = Math.floor(p.x / s);
    const cy = Math.floor(p.y / s);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const id of this.#grid.get(`${cx + dx},${cy + dy}`) ?? []) {
          const q = this.positions.get(id)!;
          if (Math.hypot(q.x - p.x, q.y - p.y) < d) return true;
        }
      }
    }
    return false;
  }

  /** Push new nodes out of nodes closer than the spacing; placed nodes stay. */
  #relax(fresh: string[]): void {
    const s = this.#spacing;
    for (let pass = 0; pass < this.#passes; pass++) {
      let moved = 0;
      for (const id of fresh) {
        const p = this.positions.get(id)!;
        let fx = 0;
        let fy = 0;
        const cx = Math.floor(p.x / s);
        const cy = Math.floor(p.y / s);
        for (let dx = -1; dx <= 1; dx++) {
          for (let dy = -1; dy <= 1; dy++) {
            for (const other of this.#grid.get(`${cx + dx},${cy + dy}`) ?? []) {
              if (other === id) continue;
              const q = this.positions.get(other)!;
              let ddx = p.x - q.x;
              let ddy = p.y - q.y;
              let d = Math.hypot(ddx, ddy);
              if (d >= s) continue;
              if (d < 1e-6) {
                // Same spot: separate in a direction given by the IDs.
                const a = (hash(id) % 628) / 100;
                ddx = Math.cos(a);
                ddy = Math.sin(a);
                d = 1;
              }
              const push = (s - d) / d / 2;
              fx += ddx * push;
              fy += ddy * push;
            }
          }
        }
        if (fx === 0 && fy === 0) continue;
        this.#move(id, p, p.x + fx, p.y + fy);
        moved++;
      }
      if (moved === 0) break;
    }
  }

  #move(id: string, p: Point, x: number, y: number): void {
    const from = this.#cell(p);
    from.splice(from.indexOf(id), 1);
    this.#sumX += x - p.x;
    this.#sumY += y - p.y;
    p.x = x;
    p.y = y;
    this.#cell(p).push(id);
  }

  #cell(p: Point): string[] {
    const key = `${Math.floor(p.x / this.#spacing)},${Math.floor(p.y / this.#spacing)}`;
    let c = this.#grid.get(key);
    if (!c) this.#grid.set(key, c = []);
    return c;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
