/**
 * A copy-on-write overlay of an image: what fsck, the deep check and the
 * kernel's analysis of a committed log read and write instead of the image
 * itself.
 *
 * An {@linkcode ImageOverlay} presents the image's bytes as one
 * `Uint8Array` (its {@linkcode ImageOverlay.bytes}, as long as the image),
 * so a kernel booted over it ({@linkcode ImageOverlay.region}) and fsck's
 * analysis read them at full speed, with no indirection. It records which
 * 64-byte lines were changed (flushed through the region, or announced with
 * {@linkcode ImageOverlay.preserve} before an in-memory change), hands back
 * the original bytes of a changed line ({@linkcode ImageOverlay.original}),
 * puts preserved lines back ({@linkcode ImageOverlay.rollback}) and, when
 * made with `writeThrough`, writes the flushed bytes to the image at the
 * next drain, after announcing their pages to `beforeWrite` (fsck's undo
 * journal).
 *
 * "No second copy of the image" means, precisely:
 * - Over a base read piece by piece (a file: {@linkcode OverlayBase}), the
 *   bytes live in one array as long as the image that is allocated lazily
 *   (untouched pages cost no memory); {@linkcode ImageOverlay.load} reads a
 *   page into it once, and only the pages asked for. Changes are made in
 *   that same array: nothing else holds the image's bytes.
 * - Over bytes already in memory that may be changed for the time of a call
 *   ({@linkcode ImageOverlay.inPlace}), the overlay's bytes are those bytes
 *   themselves: nothing is copied.
 * - In both, the original of each changed line is kept once (64 bytes a
 *   line, in one growing buffer), never the pages around it.
 * - The one case where bytes are copied: an overlay whose base is bytes in
 *   memory that must not change even for a while (a region others may
 *   see): the pages it loads are copied in. fsck makes one only to replay
 *   a committed log for its analysis of such a region, and loads only the
 *   metadata area (superblock to the first data block) into it.
 *
 * @example Check an image file without reading more of it than fsck needs
 * ```ts ignore
 * import { fsck, ImageOverlay } from "@twz/kernel";
 * const file = await Deno.open("twz.img");
 * const size = (await file.stat()).size;
 * const overlay = new ImageOverlay({
 *   size,
 *   read(into, offset) {
 *     file.seekSync(offset, Deno.SeekMode.Start);
 *     for (let n = 0; n < into.length;) n += file.readSync(into.subarray(n)) ?? into.length;
 *   },
 * });
 * console.log(fsck(overlay).clean, overlay.pagesRead);
 * ```
 *
 * @module
 */
import type { PersistentRegion } from "./hal/mod.ts";
import { PAGE } from "./_layout.ts";

/** Bytes of a line: the unit in which an overlay tracks changes. */
export const OVERLAY_LINE = 64;

/** Where an {@linkcode ImageOverlay}'s unchanged bytes come from (an image file, as a rule). */
export interface OverlayBase {
  /** The image's size in bytes. */
  readonly size: number;
  /**
   * Copy bytes `[offset, offset + into.length)` of the image into `into`.
   *
   * @param into Where the bytes go.
   * @param offset Where they are in the image.
   */
  read(into: Uint8Array, offset: number): void;
  /**
   * Write `from` to the image at `offset` (an overlay made with
   * `writeThrough` only).
   *
   * @param from The bytes.
   * @param offset Where they go in the image.
   */
  write?(from: Uint8Array, offset: number): void;
  /** Make the writes durable (after a drain wrote them). */
  sync?(): void;
}

/** Options of {@linkcode ImageOverlay}. */
export interface OverlayOptions {
  /**
   * Write flushed byte ranges to the base at the next drain (a repair);
   * without it, changes stay in the overlay.
   * @default {false}
   */
  writeThrough?: boolean | undefined;
  /**
   * Called before a drain writes to the base, with the indexes of the pages
   * it is about to write (sorted, each once per drain): the undo journal
   * saves their original bytes here.
   */
  beforeWrite?: ((pages: number[]) => void) | undefined;
}

/**
 * A copy-on-write overlay of an image (see the module documentation): one
 * array of the image's bytes, loaded page by page, and the original of every
 * line changed in it.
 */
export class ImageOverlay {
  /** The image's bytes as the overlay presents them (loaded ranges only). */
  readonly bytes: Uint8Array;
  /** A region over {@linkcode bytes}: what a kernel booted over the overlay uses. */
  readonly region: PersistentRegion;
  /** Pages read from the base (for `twz fsck --json` and the memory test). */
  pagesRead = 0;
  readonly #base: OverlayBase | undefined;
  /** Per page: whether it is loaded (absent: everything is). */
  readonly #loaded: Uint8Array | undefined;
  readonly #writeThrough: boolean;
  readonly #beforeWrite: ((pages: number[]) => void) | undefined;
  /** Flushed byte ranges not yet written to the base. */
  #dirty: Array<[number, number]> = [];
  /** Changed line -> where its original is in `#saved` (in 64-byte units). */
  readonly #changed = new Map<number, number>();
  /** The originals of changed lines, 64 bytes each, in the order they changed. */
  #saved = new Uint8Array(0);
  #savedCount = 0;
  /** Preserved line -> where its bytes (before the in-memory change) are in `#undoSaved`. */
  readonly #undo = new Map<number, number>();
  #undoSaved = new Uint8Array(0);
  /** Lines first changed by `preserve` since the last rollback (in order). */
  #fresh: number[] = [];

  /**
   * An overlay over `base`: its bytes are read on demand ({@linkcode load}).
   *
   * @param base Where the unchanged bytes come from.
   * @param options `writeThrough`, `beforeWrite`.
   */
  constructor(base: OverlayBase, options?: OverlayOptions);
  /** @internal The in-place overlay of {@linkcode ImageOverlay.inPlace}. */
  constructor(base: OverlayBase | Uint8Array, options?: OverlayOptions);
  constructor(base: OverlayBase | Uint8Array, options: OverlayOptions = {}) {
    if (base instanceof Uint8Array) {
      this.bytes = base;
      this.#base = undefined;
      this.#loaded = undefined;
    } else {
      this.bytes = new Uint8Array(base.size);
      this.#base = base;
      this.#loaded = new Uint8Array(Math.ceil(base.size / PAGE));
    }
    this.#writeThrough = (options.writeThrough ?? false) && this.#base !== undefined;
    this.#beforeWrite = options.beforeWrite;
    const flush = (offset: number, length: number) => this.#flush(offset, length);
    const drain = () => this.#drain();
    this.region = {
      size: this.bytes.length,
      granularity: "byte",
      bytes: this.bytes,
      flush,
      drain,
      persist(offset: number, length: number) {
        flush(offset, length);
        drain();
      },
      share: () => {
        throw new TypeError("An image overlay's region cannot be shared");
      },
    };
  }

  /**
   * An overlay whose bytes are `bytes` themselves (every byte loaded, nothing
   * copied): changes are made in them, announced first with
   * {@linkcode preserve} so that {@linkcode rollback} can put them back.
   *
   * @param bytes The image's bytes; the caller lets them change for a while.
   * @returns The overlay.
   */
  static inPlace(bytes: Uint8Array): ImageOverlay {
    return new ImageOverlay(bytes);
  }

  /** The image's size in bytes. */
  get size(): number {
    return this.bytes.length;
  }

  /**
   * Make bytes `[offset, offset + length)` of {@linkcode bytes} hold the
   * image's: the pages not read yet are read from the base, once. Flushed
   * bytes of a write-through overlay reach the base first.
   *
   * @param offset The first byte.
   * @param length How many bytes.
   */
  load(offset: number, length: number): void {
    const loaded = this.#loaded;
    if (loaded === undefined) return;
    this.#drain();
    const size = this.bytes.length;
    const first = Math.floor(offset / PAGE);
    const end = Math.ceil(Math.min(size, offset + length) / PAGE);
    for (let p = first; p < end; p++) {
      if (loaded[p]) continue;
      let q = p;
      while (q < end && !loaded[q]) q++;
      const from = p * PAGE, to = Math.min(size, q * PAGE);
      this.#base!.read(this.bytes.subarray(from, to), from);
      loaded.fill(1, p, q);
      this.pagesRead += q - p;
      p = q;
    }
  }

  /**
   * Keep the bytes of every line of `[offset, offset + length)` as they are
   * now (once until the next {@linkcode rollback}), before the caller
   * changes them in {@linkcode bytes}, in memory only: `rollback` puts them
   * back. A line not changed before counts as changed until then, with these
   * bytes as its original. The bytes must be loaded.
   *
   * @param offset The first byte about to change.
   * @param length How many bytes.
   */
  preserve(offset: number, length: number): void {
    if (length <= 0) return;
    const last = Math.floor((offset + length - 1) / OVERLAY_LINE);
    for (let l = Math.floor(offset / OVERLAY_LINE); l <= last; l++) {
      if (this.#undo.has(l)) continue;
      const k = this.#undo.size;
      this.#undoSaved = grow(this.#undoSaved, k + 1);
      const from = l * OVERLAY_LINE;
      const n = Math.min(OVERLAY_LINE, this.bytes.length - from);
      this.#undoSaved.set(this.bytes.subarray(from, from + n), k * OVERLAY_LINE);
      this.#undo.set(l, k);
      if (this.#keep(l, this.bytes)) this.#fresh.push(l);
    }
  }

  /** Put back every line {@linkcode preserve}d since the last rollback, as it was then. */
  rollback(): void {
    for (const [l, k] of this.#undo) {
      const from = l * OVERLAY_LINE;
      const n = Math.min(OVERLAY_LINE, this.bytes.length - from);
      this.bytes.set(this.#undoSaved.subarray(k * OVERLAY_LINE, k * OVERLAY_LINE + n), from);
    }
    this.#undo.clear();
    // Lines that changed only for the time being are unchanged again (their
    // originals are forgotten).
    for (const l of this.#fresh) this.#changed.delete(l);
    this.#fresh = [];
  }

  /**
   * The lines changed so far (flushed, or preserved and not rolled back),
   * in ascending order.
   *
   * @returns Line indexes (line `l` covers bytes `[64 l, 64 l + 64)`).
   */
  changedLines(): number[] {
    return [...this.#changed.keys()].sort((a, b) => a - b);
  }

  /**
   * The original bytes of line `line` (as the image held them before the
   * overlay changed it), or `undefined` when the line did not change.
   *
   * @param line A line index.
   * @returns A copy of its original bytes (64, or fewer at the image's end).
   */
  original(line: number): Uint8Array | undefined {
    const at = this.#changed.get(line);
    if (at === undefined) return undefined;
    const n = Math.min(OVERLAY_LINE, this.bytes.length - line * OVERLAY_LINE);
    return this.#saved.slice(at * OVERLAY_LINE, at * OVERLAY_LINE + n);
  }

  /**
   * Keep line `l`'s original unless kept; whether it was new. `source` holds
   * the image's bytes from offset `origin` on (the overlay's own bytes, or
   * lines just read from the base).
   */
  #keep(l: number, source: Uint8Array, origin = 0): boolean {
    if (this.#changed.has(l)) return false;
    const k = this.#savedCount++;
    this.#saved = grow(this.#saved, k + 1);
    const from = l * OVERLAY_LINE - origin;
    const n = Math.min(OVERLAY_LINE, this.bytes.length - l * OVERLAY_LINE);
    this.#saved.set(source.subarray(from, from + n), k * OVERLAY_LINE);
    this.#changed.set(l, k);
    return true;
  }

  /**
   * Keep the originals of the lines of `[from, to)` not kept yet, read from
   * the base (which still holds them), in one read.
   */
  #keepFromBase(from: number, to: number): void {
    const first = Math.floor(from / OVERLAY_LINE), last = Math.floor((to - 1) / OVERLAY_LINE);
    let l = first;
    while (l <= last && this.#changed.has(l)) l++;
    if (l > last || this.#base === undefined) return;
    const origin = l * OVERLAY_LINE;
    const lines = new Uint8Array(Math.min((last + 1) * OVERLAY_LINE, this.bytes.length) - origin);
    this.#base.read(lines, origin);
    for (; l <= last; l++) this.#keep(l, lines, origin);
  }

  #flush(offset: number, length: number): void {
    if (length <= 0) return;
    const end = Math.min(this.bytes.length, offset + length);
    if (this.#writeThrough) this.#dirty.push([offset, end]);
    else this.#keepFromBase(offset, end); // the change stays in memory
  }

  /**
   * Write the flushed byte ranges (exactly those: a page may hold bytes of
   * objects never read) to the base, after `beforeWrite` saw their pages and
   * their lines' originals were kept; then sync the base.
   */
  #drain(): void {
    if (this.#dirty.length === 0) return;
    const base = this.#base!;
    const ranges = this.#dirty.sort((a, b) => a[0] - b[0]);
    this.#dirty = [];
    const merged: Array<[number, number]> = [];
    for (const [from, to] of ranges) {
      const last = merged[merged.length - 1];
      if (last && from <= last[1]) last[1] = Math.max(last[1], to);
      else merged.push([from, to]);
    }
    if (this.#beforeWrite) {
      const pages = new Set<number>();
      for (const [from, to] of merged) {
        for (let p = Math.floor(from / PAGE); p < Math.ceil(to / PAGE); p++) pages.add(p);
      }
      this.#beforeWrite([...pages].sort((a, b) => a - b));
    }
    for (const [from, to] of merged) this.#keepFromBase(from, to);
    for (const [from, to] of merged) base.write!(this.bytes.subarray(from, to), from);
    base.sync?.();
  }
}

/** `buffer`, or a copy twice as large, so that it holds `lines` lines. */
function grow(buffer: Uint8Array<ArrayBuffer>, lines: number): Uint8Array<ArrayBuffer> {
  if (lines * OVERLAY_LINE <= buffer.length) return buffer;
  const grown = new Uint8Array(Math.max(16, 2 * lines) * OVERLAY_LINE);
  grown.set(buffer);
  return grown;
}
