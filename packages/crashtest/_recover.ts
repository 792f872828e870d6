/**
 * Recording a run's crash points, and recovering and checking one crash
 * state: the steps {@linkcode crashtest} and {@linkcode replay} share.
 *
 * @module
 */
import { fsck, FsckCache, Kernel } from "@twz/kernel";
import {
  countingClock,
  type CrashPoint,
  openSim,
  openSimFromBytes,
  seededEntropy,
  seededRandom,
  type SimHal,
} from "@twz/hal-sim";
import { type CheckContext, Journal, type JournalSnapshot, type Workload } from "./workload.ts";
import type { CrashViolation } from "./report.ts";

export interface Recorded {
  point: number;
  /** The crash hit before the first boot had finished formatting the image. */
  formatting: boolean;
  crash: CrashPoint;
  journal: JournalSnapshot;
  applied: boolean;
  final: boolean;
}

export interface Recording {
  points: Recorded[];
  finalMedia: Uint8Array;
  runError?: Error | undefined;
}

export async function record(workload: Workload, seed: number, unit: 8 | 64): Promise<Recording> {
  const hal = openSim({ size: workload.imageSize }, {
    entropy: seededEntropy(seed),
    clock: countingClock(),
  });
  const region = hal.region;
  region.recordHistory(true); // values lines held at earlier drains are outcomes too
  const journal = new Journal();
  const points: Recorded[] = [];
  let last: Recorded | undefined;
  let kernel: Kernel | undefined;
  region.beforeDrain = (completed) => {
    last = {
      point: completed,
      formatting: kernel === undefined,
      crash: region.crashPoint({ unit }),
      journal: journal.snapshot(),
      applied: false,
      final: false,
    };
    points.push(last);
  };
  region.onDrain = () => {
    if (last) last.applied = true;
  };
  let runError: Error | undefined;
  try {
    kernel = Kernel.boot(hal);
    await workload.run({
      kernel,
      hal,
      journal,
      random: seededRandom((seed ^ 0x9e3779b9) >>> 0),
      seed,
    });
  } catch (error) {
    runError = error instanceof Error ? error : new Error(String(error));
  }
  region.beforeDrain = undefined;
  region.onDrain = undefined;
  points.push({
    point: region.stats().drains,
    formatting: kernel === undefined,
    crash: region.crashPoint({ unit }),
    journal: journal.snapshot(),
    applied: false,
    final: true,
  });
  kernel?.halt();
  const finalMedia = region.durableImage();
  hal.close();
  return { points, finalMedia, runError };
}

/** Whether two images are equal (a word at a time where they are word-aligned). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let i = 0;
  if (a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const n = a.length >>> 2;
    const x = new Int32Array(a.buffer, a.byteOffset, n);
    const y = new Int32Array(b.buffer, b.byteOffset, n);
    for (let w = 0; w < n; w++) if (x[w] !== y[w]) return false;
    i = n * 4;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What went wrong in one crash state: where it showed, and what. */
export type Finding = { stage: CrashViolation["stage"]; message: string };

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function contextOf(rec: SimHal, p: Recorded): CheckContext {
  return { point: p.point, final: p.final, hal: rec };
}

/**
 * Recovery on the crashed image in `rec`: the kernel's boot (which replays
 * its metadata log), then the workload's `recover` (a session opening, which
 * may replay libtwz's transaction log). Returns the kernel, or what failed.
 */
async function bootAndRecover(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
): Promise<{ kernel?: Kernel; findings: Finding[] }> {
  let kernel: Kernel;
  try {
    kernel = Kernel.boot(rec, { formatBlank: true });
  } catch (error) {
    // Even a crash in the middle of the very first format must leave an image
    // that boots: format writes the superblock's magic last, so a cut-short
    // format is blank (and formatted again here), never torn.
    return { findings: [{ stage: "boot", message: `boot failed: ${(error as Error).message}` }] };
  }
  if (workload.recover) {
    try {
      const r = workload.recover(kernel, contextOf(rec, p));
      if (r instanceof Promise) await r;
    } catch (error) {
      kernel.halt();
      return {
        findings: [{ stage: "check", message: `session recovery failed: ${messageOf(error)}` }],
      };
    }
  }
  return { kernel, findings: [] };
}

/**
 * Per recovery HAL, the verdicts of fsck's slot checks: the crash states fsck
 * sees there differ from one another in a few lines, so only the slots whose
 * bytes changed since the last state are checked again (same reports).
 */
const fsckCaches = new WeakMap<SimHal, FsckCache>();

function fsckCacheOf(rec: SimHal): FsckCache {
  let cache = fsckCaches.get(rec);
  if (!cache) fsckCaches.set(rec, cache = new FsckCache());
  return cache;
}

/** `fsck` and the workload's check on a recovered kernel; halts it. */
async function verify(
  workload: Workload,
  rec: SimHal,
  kernel: Kernel,
  p: Recorded,
): Promise<Finding[]> {
  try {
    const report = fsck(rec.region, { cache: fsckCacheOf(rec) });
    if (!report.clean) {
      return report.problems.map((x) => ({ stage: "fsck", message: `${x.area}: ${x.message}` }));
    }
    let result: unknown = workload.check(kernel, p.journal, contextOf(rec, p));
    if (result instanceof Promise) result = await result;
    // A list of violations; a single string is one violation.
    if (typeof result === "string") return [{ stage: "check", message: result }];
    return Array.isArray(result)
      ? result.map((message) => ({ stage: "check", message: String(message) }))
      : [];
  } catch (error) {
    return [{ stage: "check", message: messageOf(error) }];
  } finally {
    kernel.halt();
  }
}

/**
 * Recover the crashed image in `rec`, fsck it, and run the workload's check.
 * Also says how many of recovery's drains changed the media (what crashing
 * the recovery can tell apart from the state itself), with `watch`.
 */
export async function recover(
  workload: Workload,
  rec: SimHal,
  p: Recorded,
  watch = false,
): Promise<{ findings: Finding[]; writes: number }> {
  let writes = 0;
  const region = rec.region;
  if (watch) region.beforeDrain = () => void (writes += region.flushedChanges(1) > 0 ? 1 : 0);
  let r: Awaited<ReturnType<typeof bootAndRecover>>;
  try {
    r = await bootAndRecover(workload, rec, p);
  } finally {
    region.beforeDrain = undefined;
  }
  if (!r.kernel) return { findings: r.findings, writes };
  return { findings: await verify(workload, rec, r.kernel, p), writes };
}

/** One crash point of a recovery: `point` of its drains had completed. */
export interface RecoveryPoint {
  point: number;
  crash: CrashPoint;
  applied: boolean;
}

/** The crash points of one recovery, recorded as the run's are. */
export interface RecoveryRecording {
  points: RecoveryPoint[];
  /** The media when recovery began (the crash state), and when it ended. */
  start: Uint8Array;
  end: Uint8Array;
}

/**
 * Load crash state `sel` of `p` (over `base`, the media at `p`) and recover
 * it with crash recording armed: before every drain of the recovery, and at
 * its end when something is still pending, a crash point. `undefined` when
 * recovery itself fails (the state's own check reports that).
 */
export async function recordRecovery(
  workload: Workload,
  rec: SimHal,
  base: Uint8Array,
  p: Recorded,
  sel: Uint8Array,
  unit: 8 | 64,
): Promise<RecoveryRecording | undefined> {
  const region = rec.region;
  region.loadCrashState(base, p.crash, sel);
  const start = region.durableImage();
  const points: RecoveryPoint[] = [];
  let last: RecoveryPoint | undefined;
  region.recordHistory(true);
  region.beforeDrain = () => {
    last = { point: points.length, crash: region.crashPoint({ unit }), applied: false };
    points.push(last);
  };
  region.onDrain = () => {
    if (last) last.applied = true;
  };
  let kernel: Kernel | undefined;
  try {
    kernel = (await bootAndRecover(workload, rec, p)).kernel;
    region.beforeDrain = undefined;
    region.onDrain = undefined;
    if (!kernel) return undefined;
    const end = region.crashPoint({ unit });
    if (end.units.length > 0) points.push({ point: points.length, crash: end, applied: false });
    kernel.halt();
    return { points, start, end: region.durableImage() };
  } finally {
    region.beforeDrain = undefined;
    region.onDrain = undefined;
    region.recordHistory(false);
  }
}

/**
 * The HAL recovery runs on: a `size`-byte region (each crash state reloads
 * all of it) with services seeded from `seed`, so a replay sees what the run saw.
 */
export function recoveryHal(size: number, seed: number): SimHal {
  return openSimFromBytes(new Uint8Array(size), {
    entropy: seededEntropy((seed + 1) >>> 0),
    clock: countingClock(),
  });
}
