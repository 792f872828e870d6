/**
 * Devices as kernel state objects: at every boot the board makes one
 * volatile object per device (read-only to user space, one page each) and
 * binds it under `/dev`: `/dev/console`, `/dev/clock`, `/dev/entropy`,
 * `/dev/nvm`. They are made again and rebound at every boot (`reboot`,
 * `crash`): a name under `/dev` that outlived its boot dangles until then.
 * The kernel side (this file) writes the objects' bytes; user space maps
 * them read-only and reads the layout below.
 *
 * ## Layout (little-endian; offsets in bytes)
 *
 * Every device starts with the same 64-byte header:
 *
 * | offset | type     | field                                              |
 * | ------ | -------- | -------------------------------------------------- |
 * | 0      | u32      | magic `0x56454454` ("TDEV")                        |
 * | 4      | u16      | version (1)                                        |
 * | 6      | u16      | kind: 1 console, 2 clock, 3 entropy, 4 nvm         |
 * | 8      | u32      | sequence: odd while the kernel updates the body    |
 * | 12     | u32      | reserved (0)                                       |
 * | 16     | f64      | boot time, ms since the Unix epoch                 |
 * | 24     | 32 bytes | name (UTF-8, NUL-padded): `console`, `clock`, …    |
 *
 * Bodies, from offset 64:
 *
 * - console: `64 u32` flags (bit 0 input is a terminal, bit 1 output is a
 *   terminal), `68 u32` columns, `72 u32` rows (0 when not a terminal).
 * - clock: `64 f64` wall-clock ms and `72 f64` monotonic ms as of the last
 *   tick, `80 f64` tick period ms, `88 f64` monotonic ms at boot. Updated
 *   every tick (100 ms) under the sequence word: read the sequence (even),
 *   the fields, the sequence again (unchanged) — else read again. The
 *   `clock` system call is exact; this page is for reading time without one.
 * - entropy: `64 u32` source (1: the host's CSPRNG, `crypto.getRandomValues`),
 *   `72` 32 random bytes drawn at boot (a per-boot seed; the `random`
 *   system call gives more).
 * - nvm: `64 f64` region size, `72 f64` free bytes (updated every tick),
 *   `80 u32` persistence granularity in bytes (1, 64 or 4096), `84 u32`
 *   flags (bit 0 read-only, bit 1 private overlay, bit 2 backed by an image
 *   file), `96` HAL name (32 bytes), `128` granularity name (32 bytes:
 *   `byte`, `cache-line`, `page`), `160` image path (256 bytes, truncated;
 *   empty for an anonymous region).
 *
 * @module
 */
import { type Kernel, type ObjID, Prot, TwzError } from "@twz/kernel";

/** "TDEV": the first word of every device object. */
export const DEVICE_MAGIC = 0x56454454;
/** The layout version this file writes. */
export const DEVICE_VERSION = 1;
/** Size of a device object. */
export const DEVICE_SIZE = 4096;
/** Clock and nvm refresh period, milliseconds. */
export const DEVICE_TICK_MS = 100;

/** Device kinds (header offset 6). */
export const DeviceKind = { console: 1, clock: 2, entropy: 3, nvm: 4 } as const;
/** A device's name (`/dev/NAME`). */
export type DeviceName = keyof typeof DeviceKind;
/** The devices, in binding order. */
export const DEVICE_NAMES: readonly DeviceName[] = ["console", "clock", "entropy", "nvm"];

/** Field offsets (see the module doc). */
export const DeviceField = {
  magic: 0,
  version: 4,
  kind: 6,
  sequence: 8,
  bootWall: 16,
  name: 24,
  body: 64,
  consoleFlags: 64,
  consoleColumns: 68,
  consoleRows: 72,
  clockWall: 64,
  clockMono: 72,
  clockTick: 80,
  clockBootMono: 88,
  entropySource: 64,
  entropySeed: 72,
  nvmSize: 64,
  nvmFree: 72,
  nvmGranularity: 80,
  nvmFlags: 84,
  nvmHal: 96,
  nvmGranularityName: 128,
  nvmImage: 160,
} as const;

const GRANULARITY: Readonly<Record<string, number>> = { byte: 1, "cache-line": 64, page: 4096 };
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function putText(bytes: Uint8Array, offset: number, room: number, text: string): void {
  const field = bytes.subarray(offset, offset + room);
  field.fill(0);
  const encoded = utf8.encode(text);
  // Truncate on a character boundary, keeping one NUL at the end.
  let n = Math.min(encoded.length, room - 1);
  while (n > 0 && n < encoded.length && (encoded[n]! & 0xc0) === 0x80) n--;
  field.set(encoded.subarray(0, n));
}

function getText(bytes: Uint8Array, offset: number, room: number): string {
  const field = bytes.subarray(offset, offset + room);
  const end = field.indexOf(0);
  return fromUtf8.decode(field.subarray(0, end < 0 ? room : end));
}

/** What {@linkcode readDevice} decodes. */
export interface DeviceReport {
  /** The device's name. */
  name: string;
  /** Its kind number. */
  kind: number;
  /** Boot time, ms since the Unix epoch. */
  bootWall: number;
  /** The body's fields by name (numbers and strings; the entropy seed as hex). */
  fields: Record<string, number | string>;
}

/**
 * Decode a device object's bytes (reading the clock under its sequence word).
 *
 * @param bytes The object's bytes (a mapping's `bytes`, or `read` of it).
 * @returns The header and body fields.
 * @throws {TypeError} The bytes are not a device object of this version.
 * @example
 * ```ts ignore
 * const dev = readDevice(twz.port.read(twz.naming.resolve("/dev/nvm"), 0, 4096));
 * console.log(dev.fields.size, dev.fields.hal);
 * ```
 */
export function readDevice(bytes: Uint8Array): DeviceReport {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < DEVICE_SIZE || v.getUint32(DeviceField.magic, true) !== DEVICE_MAGIC) {
    throw new TypeError("not a device object (no TDEV magic)");
  }
  if (v.getUint16(DeviceField.version, true) !== DEVICE_VERSION) {
    throw new TypeError(`device layout version ${v.getUint16(DeviceField.version, true)}`);
  }
  const F = DeviceField;
  for (;;) {
    const seq = v.getUint32(F.sequence, true);
    const kind = v.getUint16(F.kind, true);
    const fields: Record<string, number | string> = {};
    switch (kind) {
      case DeviceKind.console:
        fields.flags = v.getUint32(F.consoleFlags, true);
        fields.columns = v.getUint32(F.consoleColumns, true);
        fields.rows = v.getUint32(F.consoleRows, true);
        break;
      case DeviceKind.clock:
        fields.wall = v.getFloat64(F.clockWall, true);
        fields.mono = v.getFloat64(F.clockMono, true);
        fields.tick = v.getFloat64(F.clockTick, true);
        fields.bootMono = v.getFloat64(F.clockBootMono, true);
        break;
      case DeviceKind.entropy:
        fields.source = v.getUint32(F.entropySource, true);
        fields.seed = [...bytes.subarray(F.entropySeed, F.entropySeed + 32)]
          .map((b) => b.toString(16).padStart(2, "0")).join("");
        break;
      case DeviceKind.nvm:
        fields.size = v.getFloat64(F.nvmSize, true);
        fields.free = v.getFloat64(F.nvmFree, true);
        fields.granularity = v.getUint32(F.nvmGranularity, true);
        fields.flags = v.getUint32(F.nvmFlags, true);
        fields.hal = getText(bytes, F.nvmHal, 32);
        fields.granularityName = getText(bytes, F.nvmGranularityName, 32);
        fields.image = getText(bytes, F.nvmImage, 256);
        break;
    }
    if ((seq & 1) === 0 && v.getUint32(F.sequence, true) === seq) {
      return {
        name: getText(bytes, F.name, 32),
        kind,
        bootWall: v.getFloat64(F.bootWall, true),
        fields,
      };
    }
  }
}

/**
 * The naming calls devices need (libtwz's `Naming` has them). Binding a
 * volatile object needs `volatile: true`.
 */
export interface DeviceNaming {
  /** Bind `path` to `id`. */
  bind(
    path: string,
    id: ObjID,
    options?: { parents?: boolean; volatile?: boolean },
  ): void;
  /** Remove a name; returns what it named. */
  unbind(path: string): ObjID;
  /** What `path` names, if anything. */
  lookup(path: string): { id: ObjID } | undefined;
}

/** Options for {@linkcode bindDevices}. */
export interface DeviceOptions {
  /** Refresh period of the clock and nvm bodies. @default {DEVICE_TICK_MS} */
  tickMs?: number | undefined;
}

/** The devices of one boot. */
export interface Devices {
  /** Each device object's ID. */
  readonly ids: Readonly<Record<DeviceName, ObjID>>;
  /** The paths bound under `/dev` this boot. */
  readonly bound: readonly string[];
  /** Why some were not bound (read-only system, naming refused). */
  readonly warnings: readonly string[];
  /** Refresh the clock and nvm bodies now (the timer does it every tick). */
  tick(): void;
  /**
   * Stop the tick and unbind this boot's `/dev` names (before a clean
   * shutdown, so the image keeps no dangling names). Harmless twice and on
   * a kernel that already stopped (a crash: the names then dangle until
   * the next boot rebinds them).
   */
  stop(): void;
}

/**
 * Make the device objects of a boot and bind them under `/dev`.
 *
 * @param kernel The kernel that just booted.
 * @param naming Where to bind them (`twz.naming`); `undefined` binds nothing.
 * @param options The tick period.
 * @returns The devices; call {@linkcode Devices.stop} before shutting down.
 * @example
 * ```ts ignore
 * const devices = bindDevices(board.kernel, twz.naming);
 * // ...
 * devices.stop();
 * board.kernel.shutdown();
 * ```
 */
export function bindDevices(
  kernel: Kernel,
  naming: DeviceNaming | undefined,
  options: DeviceOptions = {},
): Devices {
  const tickMs = options.tickMs ?? DEVICE_TICK_MS;
  const hal = kernel.hal;
  const bootWall = hal.clock.wallclock();
  const bootMono = hal.clock.monotonic();
  const ids = {} as Record<DeviceName, ObjID>;
  const views = {} as Record<DeviceName, { bytes: Uint8Array; view: DataView }>;
  for (const name of DEVICE_NAMES) {
    const id = kernel.create({ size: DEVICE_SIZE, lifetime: "volatile", prot: Prot.Read });
    // The kernel's own reference to its state object: user space gets read-only mappings.
    const m = kernel.map(id, Prot.Read);
    ids[name] = id;
    views[name] = { bytes: m.bytes, view: m.view };
    const v = m.view;
    v.setUint32(DeviceField.magic, DEVICE_MAGIC, true);
    v.setUint16(DeviceField.version, DEVICE_VERSION, true);
    v.setUint16(DeviceField.kind, DeviceKind[name], true);
    v.setFloat64(DeviceField.bootWall, bootWall, true);
    putText(m.bytes, DeviceField.name, 32, name);
  }
  const F = DeviceField;
  {
    const v = views.console.view;
    let flags = 0, columns = 0, rows = 0;
    try {
      if (Deno.stdin.isTerminal()) flags |= 1;
      if (Deno.stdout.isTerminal()) {
        flags |= 2;
        ({ columns, rows } = Deno.consoleSize());
      }
    } catch { /* no terminal facts here */ }
    v.setUint32(F.consoleFlags, flags, true);
    v.setUint32(F.consoleColumns, columns, true);
    v.setUint32(F.consoleRows, rows, true);
  }
  {
    const { view: v, bytes } = views.entropy;
    v.setUint32(F.entropySource, 1, true);
    hal.entropy.fill(bytes.subarray(F.entropySeed, F.entropySeed + 32));
  }
  {
    const { view: v, bytes } = views.nvm;
    const region = hal.region;
    v.setFloat64(F.nvmSize, region.size, true);
    v.setUint32(F.nvmGranularity, GRANULARITY[region.granularity] ?? 0, true);
    v.setUint32(
      F.nvmFlags,
      (kernel.readOnly ? 1 : 0) | (hal.readOnly === true ? 2 : 0) |
        (hal.image !== undefined ? 4 : 0),
      true,
    );
    putText(bytes, F.nvmHal, 32, hal.name);
    putText(bytes, F.nvmGranularityName, 32, region.granularity);
    putText(bytes, F.nvmImage, 256, hal.image ?? "");
  }
  views.clock.view.setFloat64(F.clockTick, tickMs, true);
  views.clock.view.setFloat64(F.clockBootMono, bootMono, true);

  let timer: ReturnType<typeof setInterval> | undefined;
  const tick = () => {
    const clock = views.clock.view, nvm = views.nvm.view;
    if (clock.byteLength === 0) return stop(); // the kernel stopped: its objects are gone
    const seq = clock.getUint32(F.sequence, true);
    clock.setUint32(F.sequence, seq + 1, true);
    clock.setFloat64(F.clockWall, hal.clock.wallclock(), true);
    clock.setFloat64(F.clockMono, hal.clock.monotonic(), true);
    clock.setUint32(F.sequence, seq + 2, true);
    if (nvm.byteLength === 0) return;
    let free: number;
    try {
      free = kernel.usage().freeBytes;
    } catch {
      return stop();
    }
    const nseq = nvm.getUint32(F.sequence, true);
    nvm.setUint32(F.sequence, nseq + 1, true);
    nvm.setFloat64(F.nvmFree, free, true);
    nvm.setUint32(F.sequence, nseq + 2, true);
  };
  tick();
  if (tickMs > 0) {
    const t = setInterval(tick, tickMs);
    Deno.unrefTimer(t);
    timer = t; // the tick never keeps a process alive
  }

  const bound: string[] = [];
  const warnings: string[] = [];
  if (naming !== undefined && kernel.readOnly) {
    warnings.push("read-only system: devices are not bound under /dev");
  } else if (naming !== undefined) {
    for (const name of DEVICE_NAMES) {
      const path = `/dev/${name}`;
      try {
        // A name left by an earlier boot (its object went with that boot).
        if (naming.lookup(path) !== undefined) naming.unbind(path);
        naming.bind(path, ids[name], { parents: true, volatile: true });
        bound.push(path);
      } catch (error) {
        // A naming failure is a warning; anything else (a simulated power
        // failure, a bug) is not this function's to swallow.
        if (!(error instanceof TwzError)) throw error;
        warnings.push(`cannot bind ${path}: ${error.message}`);
      }
    }
  }

  let stopped = false;
  function stop(): void {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    if (stopped) return;
    stopped = true;
    if (naming === undefined) return;
    for (const path of bound) {
      try {
        const name = path.slice("/dev/".length) as DeviceName;
        if (naming.lookup(path)?.id === ids[name]) naming.unbind(path);
      } catch (error) {
        // The kernel stopped: the name dangles until the next boot.
        if (!(error instanceof TwzError)) throw error;
      }
    }
  }
  return { ids, bound, warnings, tick, stop };
}
