/**
 * The `kernel-objects` crash-test workload: a seeded mix of object create
 * (with ties and source ranges), write, grow (in place and by moving) and
 * delete (with tie cascades), plus the root object. After every crash it
 * checks that each acknowledged operation is there, that the operation in
 * flight took effect wholly or not at all, and that no object appears that
 * no operation made.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { formatId, type Kernel, type ObjID, Prot } from "@twz/kernel";
import type { JournalEntry, JournalSnapshot, Workload, WorkloadContext } from "../workload.ts";

/** Operations per run. */
const OPS = 48;

interface Source {
  id: ObjID;
  srcOffset: number;
  dstOffset: number;
  length: number;
}

interface ModelObject {
  size: number;
  data: Uint8Array;
  parents: ObjID[];
}

interface Model {
  objects: Map<ObjID, ModelObject>;
  root: ObjID;
  inflight?: JournalEntry;
}

function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7 + 1) & 0xff;
  return out;
}

function initial(objects: Map<ObjID, ModelObject>, size: number, sources: Source[]): Uint8Array {
  const data = new Uint8Array(size);
  for (const s of sources) {
    const from = objects.get(s.id);
    if (from) data.set(from.data.subarray(s.srcOffset, s.srcOffset + s.length), s.dstOffset);
  }
  return data;
}

/** The objects a delete of `id` removes: it and, transitively, what is tied to it. */
function cascade(objects: Map<ObjID, ModelObject>, id: ObjID): Set<ObjID> {
  const gone = new Set<ObjID>([id]);
  for (let changed = true; changed;) {
    changed = false;
    for (const [x, o] of objects) {
      if (!gone.has(x) && o.parents.some((p) => gone.has(p))) {
        gone.add(x);
        changed = true;
      }
    }
  }
  return gone;
}

function apply(m: Model, e: JournalEntry): void {
  const a = e.args as Record<string, unknown>;
  switch (e.op) {
    case "root": {
      const id = e.result as ObjID;
      if (!m.objects.has(id)) {
        m.objects.set(id, { size: 65536, data: new Uint8Array(65536), parents: [] });
      }
      m.root = id;
      break;
    }
    case "create": {
      const size = a.size as number;
      m.objects.set(e.result as ObjID, {
        size,
        data: initial(m.objects, size, a.sources as Source[]),
        parents: a.ties as ObjID[],
      });
      break;
    }
    case "write":
      m.objects.get(a.id as ObjID)!.data.set(a.data as Uint8Array, a.offset as number);
      break;
    case "grow": {
      const o = m.objects.get(a.id as ObjID)!;
      const data = new Uint8Array(a.size as number);
      data.set(o.data);
      o.data = data;
      o.size = a.size as number;
      break;
    }
    case "delete":
      for (const x of cascade(m.objects, a.id as ObjID)) m.objects.delete(x);
      break;
  }
}

const models = new WeakMap<JournalSnapshot, Model>();

function modelOf(journal: JournalSnapshot): Model {
  let m = models.get(journal);
  if (m) return m;
  m = { objects: new Map(), root: 0n };
  for (const e of journal) {
    if (e.state === "failed") continue;
    if (e.state === "started") {
      m.inflight = e;
      break;
    }
    apply(m, e);
  }
  models.set(journal, m);
  return m;
}

/** The first index where `a` and `b` differ, or -1 (equal contents: one native comparison). */
function sameBytes(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = Buffer.from(a.buffer, a.byteOffset, a.length);
  if (x.equals(Buffer.from(b.buffer, b.byteOffset, b.length))) return -1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** The kernel-objects workload. */
export const workload: Workload = {
  name: "kernel-objects",
  summary: "object create (ties, sources), write, grow, delete (tie cascades), root object",
  imageSize: 320 * 1024,

  run({ kernel, journal, random }: WorkloadContext): void {
    const live: ObjID[] = [];
    const sizes = new Map<ObjID, number>();
    const pick = () => live[Math.floor(random() * live.length)]!;
    const root = journal.record("root", {}, () => kernel.rootObject());
    sizes.set(root, 65536);
    for (let i = 0; i < OPS; i++) {
      const r = random();
      try {
        if (live.length < 3 || r < 0.35) {
          const size = 1 + Math.floor(random() * 2600);
          const ties = live.length > 0 && random() < 0.4 ? [...new Set([pick(), pick()])] : [];
          const sources: Source[] = [];
          if (live.length > 0 && random() < 0.3) {
            const src = pick();
            const length = Math.min(sizes.get(src)!, size, 1 + Math.floor(random() * 900));
            sources.push({ id: src, srcOffset: 0, dstOffset: size - length, length });
          }
          const id = journal.record(
            "create",
            { size, ties, sources },
            () => kernel.create({ size, ties, sources }),
          );
          live.push(id);
          sizes.set(id, size);
        } else if (r < 0.6) {
          const id = pick();
          const size = sizes.get(id)!;
          const offset = Math.floor(random() * size);
          const length = 1 + Math.floor(random() * Math.min(size - offset, 700));
          const data = pattern(i, length);
          journal.record("write", { id, offset, data }, () => kernel.write(id, offset, data));
        } else if (r < 0.75) {
          const id = pick();
          const size = sizes.get(id)! + 1 + Math.floor(random() * 1500);
          journal.record("grow", { id, size }, () => kernel.grow(id, size));
          sizes.set(id, size);
        } else {
          const id = pick();
          journal.record("delete", { id }, () => kernel.delete(id));
          for (let j = live.length - 1; j >= 0; j--) {
            if (!kernel.exists(live[j]!)) live.splice(j, 1);
          }
        }
      } catch (error) {
        // Out of space or table full: recorded as failed; anything else is a finding.
        const code = (error as { code?: number }).code;
        if (code !== 3 && code !== 4) throw error;
      }
    }
  },

  check(kernel: Kernel, journal: JournalSnapshot): string[] {
    const m = modelOf(journal);
    const out: string[] = [];
    const inflight = m.inflight;
    const ia = (inflight?.args ?? {}) as Record<string, unknown>;
    const mayBeGone = inflight?.op === "delete"
      ? cascade(m.objects, ia.id as ObjID)
      : new Set<ObjID>();
    for (const [id, o] of m.objects) {
      const name = formatId(id);
      if (!kernel.exists(id)) {
        if (!mayBeGone.has(id)) out.push(`acknowledged object ${name} is missing`);
        continue;
      }
      const stat = kernel.stat(id);
      const bytes = kernel.map(id, Prot.Read).bytes;
      if (inflight?.op === "grow" && ia.id === id && stat.size === ia.size) {
        const at = sameBytes(bytes.subarray(0, o.size), o.data);
        if (at >= 0) out.push(`object ${name} grown in flight lost byte ${at}`);
        if (bytes.subarray(o.size).some((b) => b !== 0)) {
          out.push(`object ${name} grown in flight has non-zero new bytes`);
        }
        continue;
      }
      if (stat.size !== o.size) {
        out.push(`object ${name} has size ${stat.size}, acknowledged ${o.size}`);
        continue;
      }
      if (inflight?.op === "write" && ia.id === id) {
        const data = ia.data as Uint8Array;
        const offset = ia.offset as number;
        for (let i = 0; i < o.size; i++) {
          const ok = bytes[i] === o.data[i] ||
            (i >= offset && i < offset + data.length && bytes[i] === data[i - offset]);
          if (!ok) {
            out.push(
              `object ${name} written in flight holds a byte at ${i} that was never written`,
            );
            break;
          }
        }
        continue;
      }
      const at = sameBytes(bytes, o.data);
      if (at >= 0) out.push(`object ${name} differs from its acknowledged contents at byte ${at}`);
    }
    if (inflight?.op === "delete" && !kernel.exists(ia.id as ObjID)) {
      for (const x of mayBeGone) {
        if (kernel.exists(x)) {
          out.push(
            `delete in flight removed ${formatId(ia.id as ObjID)} but left dependent ${
              formatId(x)
            }`,
          );
        }
      }
    }
    // Nothing unacknowledged, except what the operation in flight makes.
    const extra = kernel.list().filter((s) => s.lifetime === "persistent" && !m.objects.has(s.id));
    const allowed = inflight?.op === "create" || inflight?.op === "root" ? 1 : 0;
    if (extra.length > allowed) {
      out.push(
        `${extra.length} unacknowledged object(s) exist: ${
          extra.map((s) => formatId(s.id)).join(", ")
        }`,
      );
    } else if (extra.length === 1) {
      const s = extra[0]!;
      const size = inflight!.op === "root" ? 65536 : ia.size as number;
      const want = inflight!.op === "root"
        ? new Uint8Array(size)
        : initial(m.objects, size, ia.sources as Source[]);
      if (s.size !== size) out.push(`the object created in flight has size ${s.size}, not ${size}`);
      else if (sameBytes(kernel.map(s.id, Prot.Read).bytes, want) >= 0) {
        out.push(`the object created in flight has wrong initial contents`);
      }
    }
    // Dependents: an edge counts when its dependent exists.
    if (!inflight || inflight.op === "write") {
      for (const [id] of m.objects) {
        let want = 0;
        for (const o of m.objects.values()) if (o.parents.includes(id)) want++;
        const got = kernel.stat(id).dependents;
        if (got !== want) {
          out.push(`object ${formatId(id)} has ${got} dependents, expected ${want}`);
        }
      }
    }
    if (m.root !== 0n && m.objects.has(m.root) && kernel.rootObject() !== m.root) {
      out.push(`the root record no longer names root object ${formatId(m.root)}`);
    }
    if (out.length === 0) {
      // The recovered kernel still works: allocate and free.
      const id = kernel.create({ size: 100 });
      kernel.delete(id);
    }
    return out;
  },
};
