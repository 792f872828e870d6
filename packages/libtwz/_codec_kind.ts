/**
 * The built-in codecs by their stored kind number (collections record their
 * codecs' kinds; the checkers and `open` look them up). Private to libtwz.
 *
 * @module
 */
import { type Codec, codec } from "./codec.ts";

const BY_KIND = new Map<number, Codec<unknown>>(
  Object.values(codec).map((c) => [c.kind, c as Codec<unknown>]),
);

/** The codec stored under `kind`, or undefined. */
export function codecOfKind(kind: number): Codec<unknown> | undefined {
  return BY_KIND.get(kind);
}
