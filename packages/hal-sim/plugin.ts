/**
 * The hal-sim plugin: opens a {@linkcode SimRegion} over an image file or an
 * anonymous in-memory media, with the system's services or replayable ones
 * (the crash checker's).
 *
 * @module
 */
import {
  type AttachedRegion,
  type Clock,
  type CrashArmOptions,
  cryptoEntropy,
  type Entropy,
  type Hal,
  HalError,
  type HalOpenOptions,
  type HalPlugin,
  type ImageFile,
  openImageFile,
  type PowerFailureOptions,
  type RegionShare,
  stdioConsole,
  systemClock,
} from "@twz/kernel/hal";
import { seededRandom } from "./crash.ts";
import { FileMedia, MemoryMedia, type SimMedia } from "./media.ts";
import { SharedRegion, SimRegion } from "./region.ts";

/**
 * The largest image hal-sim opens, 16 GiB: it holds the whole image in
 * memory. The plugin's {@linkcode HalPlugin.maxImageSize}.
 */
export const MAX_IMAGE_SIZE = 16 * 2 ** 30;

/** hal-sim's settings: `sync` = `none` (default) | `data`. */
const SETTINGS: Record<string, readonly string[]> = { sync: ["none", "data"] };

function syncSetting(settings: Record<string, string> | undefined): boolean {
  for (const [key, value] of Object.entries(settings ?? {})) {
    const allowed = SETTINGS[key];
    if (!allowed) {
      throw new HalError(
        `Cannot open a sim image: unknown setting "${key}" (known: ${
          Object.keys(SETTINGS).join(", ")
        })`,
      );
    }
    if (!allowed.includes(value)) {
      throw new HalError(
        `Cannot open a sim image: ${key} must be ${allowed.join(" or ")}, not "${value}"`,
      );
    }
  }
  return settings?.sync === "data";
}

/**
 * The simulated-NVM plugin.
 *
 * @example
 * ```ts
 * import { plugin } from "@twz/hal-sim";
 * const hal = await plugin.open({ size: 4096 });
 * console.log(hal.region.granularity); // "cache-line"
 * hal.close();
 * ```
 */
export const plugin: HalPlugin = {
  name: "sim",
  maxImageSize: MAX_IMAGE_SIZE,
  describe() {
    return {
      name: "sim",
      summary: "simulated NVM: SharedArrayBuffer + image file, volatile cache model",
      available: true,
      details: { granularity: "cache-line", "power-failure": "yes", settings: "sync=none|data" },
    };
  },
  // deno-lint-ignore require-await
  async open(options: HalOpenOptions): Promise<Hal> {
    return openSim(options);
  },
  // deno-lint-ignore require-await
  async attach(share: RegionShare): Promise<AttachedRegion> {
    if (share.kind !== "shared-memory") {
      throw new HalError(`hal-sim cannot attach a ${share.kind} share`);
    }
    return new SharedRegion(share.buffer);
  },
};

/** A simulated HAL, with its region's extra powers visible to tests. */
export interface SimHal extends Hal {
  /** The simulated region, with its crash-checking powers. */
  readonly region: SimRegion;
}

/**
 * Open a simulated HAL synchronously (what `plugin.open` does).
 *
 * @param options As for {@linkcode HalPlugin.open}; without `image` the region
 * is anonymous and `size` is required.
 * @param services Clock and entropy to use instead of the system's (replays).
 * @returns The open HAL.
 * @throws {HalError} The image cannot be opened or created.
 */
export function openSim(options: HalOpenOptions, services: SimServices = {}): SimHal {
  let media: SimMedia;
  let created: boolean;
  let size: number;
  let buffer: SharedArrayBuffer;
  let file: ImageFile | undefined;
  const syncData = syncSetting(options.settings);
  if (options.image === undefined) {
    if (!options.size || options.size <= 0 || !Number.isInteger(options.size)) {
      throw new HalError("An anonymous sim region needs a positive integer size");
    }
    size = options.size;
    created = true;
    buffer = new SharedArrayBuffer(size);
    media = new MemoryMedia(new Uint8Array(size));
  } else {
    file = openImageFile({ ...options, image: options.image });
    ({ created, size } = file);
    media = new FileMedia(file, syncData);
    try {
      buffer = new SharedArrayBuffer(size);
      if (!created) media.read(0, new Uint8Array(buffer));
    } catch (error) {
      if (created) {
        try {
          Deno.removeSync(options.image);
        } catch { /* already gone */ }
      }
      file.close();
      if (error instanceof RangeError) {
        throw new HalError(
          `Cannot open image ${options.image}: ${size} bytes do not fit in memory (${error.message})`,
          { cause: error },
        );
      }
      throw error;
    }
  }
  const hal = simHal(
    new SimRegion(buffer, media),
    services,
    options.image,
    created,
    options.console,
  );
  if (!file?.readOnly) return hal;
  return {
    ...hal,
    readOnly: true,
    ...(file.readOnlyReason !== undefined ? { readOnlyReason: file.readOnlyReason } : {}),
  };
}

/** The HAL over `region`: the system's services unless `services` names others. */
function simHal(
  region: SimRegion,
  services: SimServices,
  image: string | undefined,
  created: boolean,
  console: HalOpenOptions["console"],
): SimHal {
  return {
    name: "sim",
    image,
    created,
    region,
    clock: services.clock ?? systemClock(),
    entropy: services.entropy ?? cryptoEntropy(),
    console: console ?? stdioConsole(),
    power: {
      powerFail: (o?: PowerFailureOptions) => region.powerFail(o),
      armCrash: (drain: number, o?: CrashArmOptions) => region.armCrash(drain, o),
    },
    close: () => region.close(),
  };
}

/**
 * Services to use instead of the system's, so that a run replays exactly
 * (the crash checker gives seeded entropy and a counting clock).
 */
export interface SimServices {
  /** The clock. @default {the system clock} */
  clock?: Clock | undefined;
  /** The entropy source. @default {crypto.getRandomValues} */
  entropy?: Entropy | undefined;
}

/**
 * Entropy from a seed: the same seed gives the same bytes (tests, replays).
 *
 * @example
 * ```ts
 * import { seededEntropy } from "@twz/hal-sim";
 * const a = new Uint8Array(4), b = new Uint8Array(4);
 * seededEntropy(7).fill(a);
 * seededEntropy(7).fill(b);
 * console.log(a.join() === b.join()); // true
 * ```
 */
export function seededEntropy(seed: number): Entropy {
  const random = seededRandom(seed);
  return { fill: (target) => target.forEach((_, i) => target[i] = (random() * 256) | 0) };
}

/**
 * A clock that advances by `step` ms at every reading, from `start`: runs that
 * read it in the same order see the same times.
 */
export function countingClock(start = 1_700_000_000_000, step = 1): Clock {
  let now = start;
  return { monotonic: () => (now += step), wallclock: () => (now += step) };
}

/**
 * Build a sim HAL over an existing media snapshot (the crash checker's entry).
 *
 * @param image The media contents; copied.
 * @param services Clock and entropy to use instead of the system's.
 */
export function openSimFromBytes(image: Uint8Array, services: SimServices = {}): SimHal {
  const buffer = new SharedArrayBuffer(image.length);
  new Uint8Array(buffer).set(image);
  return simHal(
    new SimRegion(buffer, new MemoryMedia(image.slice())),
    services,
    undefined,
    false,
    undefined,
  );
}
