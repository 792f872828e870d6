/**
 * Thread objects and code objects: the byte layouts of the two kinds of
 * kernel state object the thread manager reads and writes.
 *
 * A **thread object** is a raw kernel object (not a libtwz object: no
 * meta-info, no FOT) of {@linkcode THREAD_OBJECT_SIZE} bytes, one per thread,
 * persistent (volatile on a read-only system). It is the thread's status as
 * `ps` reads it, and it outlives the thread and the boot: a thread of an
 * earlier boot reads "exited (lost at reboot)" after `markLost`.
 *
 * ```text
 * offset size field
 *   0    u32  magic "TWZT" (0x545a5754 little-endian: bytes 54 57 5a 54)
 *   4    u16  version (1)
 *   6    u16  flags: bit 0 kill requested, bit 1 lost at reboot
 *   8    u32  state word (ThreadState: 0 starting, 1 running, 2 sleeping, 3 exited)
 *  12    i32  exit code (valid once exited)
 *  16    u32  tid (unique within a boot; the manager starts above earlier boots' tids)
 *  20    u32  parent tid (0: started by the kernel's own session)
 *  24    f64  started, ms since the Unix epoch
 *  32    f64  ended, ms since the Unix epoch (0 while running, and for lost threads)
 *  40    16B  code object ID (writeId: low 64 bits, then high 64 bits)
 *  56    8B   reserved (zero)
 *  64    u16  name length in bytes, then the name (UTF-8, at most 62 bytes)
 * 128    u16  fault kind length, then the kind (UTF-8, at most 30 bytes; length 0 = no fault)
 * 160    u16  fault message length, then the message (UTF-8, at most 350 bytes)
 * 512         end
 * ```
 *
 * Commit order (each step persisted before the next): at spawn the whole
 * object is written, state "starting", and persisted once; at the end
 * the exit code, end time and fault are written and persisted first, and the
 * state word `exited` last. So a crash leaves either the old state (then
 * `markLost` ends it as lost) or a complete exit record. The sleeping/
 * running transitions are stored but not persisted: after a reboot no thread
 * runs, so only "exited or not" matters.
 *
 * A **code object** holds one ES module, the program, created immutable with
 * protections Read|Exec (`twz run` makes them):
 *
 * ```text
 *   0    u32  magic "TWZX" (0x585a5754 little-endian: bytes 54 57 5a 58)
 *   4    u16  version (1)
 *   6    u16  flags (0)
 *   8    u32  length of the module text in bytes
 *  12    u32  reserved (0)
 *  16         the module text (UTF-8); bytes after it are ignored
 * ```
 *
 * @module
 */
import {
  ErrorCode,
  type Extent,
  formatId,
  type ObjID,
  readId,
  type ThreadFault,
  type ThreadInfo,
  ThreadState,
  type ThreadStateNo,
  TwzError,
  writeId,
} from "../abi/mod.ts";

/** Magic number of a thread object ("TWZT" read as little-endian). */
export const THREAD_MAGIC = 0x545a5754;
/** Version of the thread object layout. */
export const THREAD_VERSION = 1;
/** Size of a thread object. */
export const THREAD_OBJECT_SIZE = 512;

/** Flag bits of a thread object. */
export const ThreadFlag = {
  /** A kill was requested. */
  Killing: 1,
  /** The thread belonged to an earlier boot and was marked lost. */
  Lost: 2,
} as const;

/** Field offsets of a thread object. */
export const ThreadField = {
  magic: 0,
  version: 4,
  flags: 6,
  state: 8,
  exitCode: 12,
  tid: 16,
  parent: 20,
  started: 24,
  ended: 32,
  code: 40,
  name: 64,
  faultKind: 128,
  faultMessage: 160,
} as const;

/** Room (bytes after the u16 length) of each string field. */
const ROOM = { name: 62, faultKind: 30, faultMessage: 350 } as const;

/** Magic number of a code object ("TWZX" read as little-endian). */
export const CODE_MAGIC = 0x585a5754;
/** Version of the code object layout. */
export const CODE_VERSION = 1;
/** Size of a code object's header; the module text follows it. */
export const CODE_HEADER = 16;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The bytes of a code object holding `text` (header, then the UTF-8 text).
 *
 * @param text One ES module.
 * @returns The object's bytes: create the object with them as its source.
 */
export function encodeCodeObject(text: string): Uint8Array {
  const body = utf8.encode(text);
  const out = new Uint8Array(CODE_HEADER + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, CODE_MAGIC, true);
  v.setUint16(4, CODE_VERSION, true);
  v.setUint32(8, body.length, true);
  out.set(body, CODE_HEADER);
  return out;
}

/**
 * The module text of a code object's bytes.
 *
 * @throws {TwzError} `InvalidArgument` when the bytes are not a code object.
 */
export function decodeCodeObject(id: ObjID, bytes: Uint8Array): string {
  const bad = (why: string) =>
    new TwzError(ErrorCode.InvalidArgument, `${formatId(id)} is not a code object: ${why}`);
  if (bytes.length < CODE_HEADER) throw bad(`only ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== CODE_MAGIC) throw bad("no TWZX magic");
  const version = v.getUint16(4, true);
  if (version !== CODE_VERSION) throw bad(`unknown version ${version}`);
  const length = v.getUint32(8, true);
  if (length > bytes.length - CODE_HEADER) {
    throw bad(`its text (${length} bytes) runs past its end (${bytes.length} bytes)`);
  }
  try {
    return fromUtf8.decode(bytes.subarray(CODE_HEADER, CODE_HEADER + length));
  } catch {
    throw bad("its text is not UTF-8");
  }
}

/** Whether `bytes` start like a thread object. */
export function isThreadObject(bytes: Uint8Array): boolean {
  if (bytes.length < THREAD_OBJECT_SIZE) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(ThreadField.magic, true) === THREAD_MAGIC;
}

/** Write a string field: u16 length, then at most `room` bytes (cut at a character). */
function putString(v: DataView, bytes: Uint8Array, at: number, room: number, s: string): void {
  let enc = utf8.encode(s);
  if (enc.length > room) {
    let n = room;
    while (n > 0 && (enc[n]! & 0xc0) === 0x80) n--; // do not split a character
    enc = enc.subarray(0, n);
  }
  bytes.fill(0, at, at + 2 + room);
  v.setUint16(at, enc.length, true);
  bytes.set(enc, at + 2);
}

function getString(v: DataView, bytes: Uint8Array, at: number, room: number): string {
  const n = Math.min(v.getUint16(at, true), room);
  return new TextDecoder().decode(bytes.subarray(at + 2, at + 2 + n));
}

/** The fields a new thread object starts with. */
export interface ThreadRecord {
  /** Thread number. */
  tid: number;
  /** The parent's tid (0: the kernel's session). */
  parent: number;
  /** Program name. */
  name: string;
  /** Code object. */
  code: ObjID;
  /** Start time (ms since the epoch). */
  started: number;
}

/**
 * A view of one thread object's bytes through its mapping's live extent (so
 * it follows the object when it moves, and reads as invalid once the object
 * is deleted). Writers store fields; the caller persists (see the commit
 * order above). Stores on a deleted object are dropped.
 */
export class ThreadObject {
  readonly #e: Extent;

  /** View the object mapped by `extent` as a thread object. */
  constructor(readonly id: ObjID, extent: Extent) {
    this.#e = extent;
  }

  /** Whether the object is still there and large enough to hold the record. */
  get present(): boolean {
    return this.#e.bytes.length >= THREAD_OBJECT_SIZE;
  }

  /** Fill a fresh thread object (state "starting"). */
  init(r: ThreadRecord): void {
    if (!this.present) return;
    const v = this.#e.view, b = this.#e.bytes;
    b.fill(0, 0, THREAD_OBJECT_SIZE);
    v.setUint32(ThreadField.magic, THREAD_MAGIC, true);
    v.setUint16(ThreadField.version, THREAD_VERSION, true);
    v.setUint32(ThreadField.state, ThreadState.Starting, true);
    v.setUint32(ThreadField.tid, r.tid, true);
    v.setUint32(ThreadField.parent, r.parent, true);
    v.setFloat64(ThreadField.started, r.started, true);
    writeId(v, ThreadField.code, r.code);
    putString(v, b, ThreadField.name, ROOM.name, r.name);
  }

  /** Whether the bytes hold a thread object of a version this code reads. */
  get valid(): boolean {
    const v = this.#e.view;
    return this.present && v.getUint32(ThreadField.magic, true) === THREAD_MAGIC &&
      v.getUint16(ThreadField.version, true) === THREAD_VERSION;
  }
  /** The state word. */
  get state(): ThreadStateNo {
    return this.#e.view.getUint32(ThreadField.state, true) as ThreadStateNo;
  }
  set state(s: ThreadStateNo) {
    if (this.present) this.#e.view.setUint32(ThreadField.state, s, true);
  }
  /** Flag bits ({@linkcode ThreadFlag}). */
  get flags(): number {
    return this.#e.view.getUint16(ThreadField.flags, true);
  }
  set flags(f: number) {
    if (this.present) this.#e.view.setUint16(ThreadField.flags, f, true);
  }
  /** Thread number. */
  get tid(): number {
    return this.#e.view.getUint32(ThreadField.tid, true);
  }
  /** Parent thread number (0: the kernel's session). */
  get parent(): number {
    return this.#e.view.getUint32(ThreadField.parent, true);
  }
  /** The code object. */
  get code(): ObjID {
    return readId(this.#e.view, ThreadField.code);
  }

  /**
   * Store the end record (exit code, end time, fault), not yet the state
   * word: persist these bytes, then store and persist the state.
   */
  setEnd(exitCode: number, ended: number, fault: ThreadFault | null): void {
    if (!this.present) return;
    const v = this.#e.view, b = this.#e.bytes;
    v.setInt32(ThreadField.exitCode, exitCode | 0, true);
    v.setFloat64(ThreadField.ended, ended, true);
    putString(v, b, ThreadField.faultKind, ROOM.faultKind, fault?.kind ?? "");
    putString(v, b, ThreadField.faultMessage, ROOM.faultMessage, fault?.message ?? "");
  }

  /** What the object says, as `ps` shows it (call only when {@linkcode valid}). */
  info(): ThreadInfo {
    const v = this.#e.view, b = this.#e.bytes;
    const kind = getString(v, b, ThreadField.faultKind, ROOM.faultKind);
    return {
      tid: this.tid,
      id: this.id,
      name: getString(v, b, ThreadField.name, ROOM.name),
      state: this.state,
      exitCode: v.getInt32(ThreadField.exitCode, true),
      fault: kind === ""
        ? null
        : { kind, message: getString(v, b, ThreadField.faultMessage, ROOM.faultMessage) },
      started: v.getFloat64(ThreadField.started, true),
      ended: v.getFloat64(ThreadField.ended, true),
      killing: (this.flags & ThreadFlag.Killing) !== 0 && this.state !== ThreadState.Exited,
    };
  }
}
