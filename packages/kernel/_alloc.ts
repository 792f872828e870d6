// The space allocator: one bit per 1 KiB data block in a bitmap on NVM
// (1 = in use), changed only through a MetaTx. Allocation is next-fit from a
// cursor kept in the root record, so a run of creates does not rescan the
// start of the bitmap; full words are skipped 32 blocks at a time.
import type { MetaTx } from "./_log.ts";

export class BlockBitmap {
  constructor(
    readonly offset: number,
    readonly blocks: number,
  ) {}

  #word(block: number): number {
    return this.offset + (block >>> 5) * 4;
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

  /** Mark [start, start + count) used (`used`) or free. */
  mark(tx: MetaTx, start: number, count: number, used: boolean): void {
    let b = start;
    const end = start + count;
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
  }
}
