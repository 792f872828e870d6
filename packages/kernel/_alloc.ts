// The space allocator: one bit per 1 KiB data block in a bitmap on NVM
// (1 = in use), changed only through a MetaTx. Allocation is next-fit from a
// cursor kept in the root record, so a run of creates does not rescan the
// start of the bitmap; full words are skipped 32 blocks at a time.
//
// Format 2: every 64-byte line of the bitmap (16 words, 512 blocks) has a u32
// check in the bitmap-check area (see _check.ts). A line is verified the first
// time the allocator reads it in a boot; `mark` rewrites the checks of the
// lines it changes in the same transaction. A damaged line refuses the
// operation (ImageCorrupt naming the line) and is never allocated over.
import { ErrorCode, TwzError } from "./abi/mod.ts";
import type { MetaTx } from "./_log.ts";
import type { Geometry } from "./_layout.ts";
import { BLOCKS_PER_LINE, lineCheck, lineCheckOffset, lineSealed } from "./_check.ts";

export class BlockBitmap {
  readonly offset: number;
  readonly blocks: number;
  /** Per line: 0 not yet verified, 1 sound, 2 damaged. */
  readonly verified: Uint8Array;

  constructor(
    readonly view: DataView,
    readonly geometry: Geometry,
  ) {
    this.offset = geometry.bitmapOffset;
    this.blocks = geometry.dataBlocks;
    this.verified = new Uint8Array(Math.ceil(this.blocks / BLOCKS_PER_LINE));
  }

  /** Whether bitmap line `line` holds its check (verified once per boot). */
  lineSound(line: number): boolean {
    const known = this.verified[line];
    if (known !== 0) return known === 1;
    const ok = lineSealed(this.view, this.geometry, line);
    this.verified[line] = ok ? 1 : 2;
    return ok;
  }

  /** The ImageCorrupt error for damaged line `line`. */
  lineError(line: number): TwzError {
    const first = line * BLOCKS_PER_LINE;
    const last = Math.min(this.blocks, first + BLOCKS_PER_LINE) - 1;
    return new TwzError(
      ErrorCode.ImageCorrupt,
      `the block bitmap is damaged (line ${line}, blocks ${first}-${last}, fails its check); nothing was allocated there: run \`twz fsck\``,
    );
  }

  /**
   * Check the lines of blocks [start, start + count) before an operation
   * relies on them.
   *
   * @throws {TwzError} `ImageCorrupt` naming the first damaged line.
   */
  checkRange(start: number, count: number): void {
    if (count <= 0) return;
    for (let l = start >>> 9; l <= (start + count - 1) >>> 9; l++) {
      if (!this.lineSound(l)) throw this.lineError(l);
    }
  }

  /** The word holding `block`'s bit, after checking its line. */
  #word(block: number): number {
    const line = block >>> 9;
    if (this.verified[line] !== 1 && !this.lineSound(line)) throw this.lineError(line);
    return this.offset + (block >>> 5) * 4;
  }

  /** Whether `block` is marked used (reading `tx`'s writes). */
  isUsed(tx: MetaTx, block: number): boolean {
    return !this.isFree(tx, block);
  }

  isFree(tx: MetaTx, block: number): boolean {
    return (tx.u32(this.#word(block)) & (1 << (block & 31))) === 0;
  }

  /** Whether blocks [start, start + count) are all free. */
  rangeFree(tx: MetaTx, start: number, count: number): boolean {
    if (start + count > this.blocks) return false;
    for (let b = start; b < start + count; b++) if (!this.isFree(tx, b)) return false;
    return true;
  }

  /**
   * Find `count` contiguous free blocks, next-fit from `cursor`.
   *
   * @returns The first block, or -1 when no run is long enough.
   * @throws {TwzError} `ImageCorrupt` when the search reaches a damaged line.
   */
  find(tx: MetaTx, count: number, cursor: number): number {
    if (count <= 0 || count > this.blocks) return -1;
    const tryFrom = (from: number, to: number): number => {
      let run = 0;
      let b = from;
      while (b < to) {
        if (run === 0 && (b & 31) === 0 && tx.u32(this.#word(b)) === 0xffffffff) {
          b += 32;
          continue;
        }
        if (this.isFree(tx, b)) {
          if (++run === count) return b - count + 1;
        } else {
          run = 0;
        }
        b++;
      }
      return -1;
    };
    const start = cursor < this.blocks ? cursor : 0;
    const found = tryFrom(start, this.blocks);
    return found >= 0 ? found : tryFrom(0, Math.min(this.blocks, start + count - 1));
  }

  /**
   * Mark [start, start + count) used (`used`) or free, and rewrite the
   * checks of the lines changed, in `tx`.
   *
   * @throws {TwzError} `ImageCorrupt` when a line of the range is damaged
   * (before `tx` is changed).
   */
  mark(tx: MetaTx, start: number, count: number, used: boolean): void {
    if (count <= 0) return;
    const end = start + count;
    const firstLine = start >>> 9, lastLine = (end - 1) >>> 9;
    this.checkRange(start, count);
    let b = start;
    while (b < end) {
      const off = this.#word(b);
      const first = b & 31;
      const last = Math.min(31, first + (end - b) - 1);
      const bits = last - first === 31
        ? 0xffffffff
        : (((1 << (last - first + 1)) - 1) << first) >>> 0;
      const word = tx.u32(off);
      tx.setU32(off, used ? (word | bits) >>> 0 : (word & ~bits) >>> 0);
      b += last - first + 1;
    }
    const g = this.geometry;
    const read = (o: number) => tx.u32(o);
    for (let l = firstLine; l <= lastLine; l++) {
      tx.setU32(lineCheckOffset(g, l), lineCheck(g, l, read));
    }
  }
}
