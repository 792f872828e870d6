/**
 * The closed, numbered set of error codes the kernel reports, shared with user
 * space. A {@linkcode TwzError} carries one; messages say what was wrong with
 * which object.
 *
 * @module
 */

/** Error codes. The numbers are part of the ABI and never change. */
export const ErrorCode = {
  /** An argument was malformed or out of range. */
  InvalidArgument: 1,
  /** No object has that ID (or it was deleted). */
  ObjectNotFound: 2,
  /** The persistent region has no contiguous space left for the request. */
  OutOfSpace: 3,
  /** The object table has no free slot left. */
  TableFull: 4,
  /** The operation is not allowed by the object's protections. */
  AccessDenied: 5,
  /** The image is damaged: a checksum or a structure does not hold. */
  ImageCorrupt: 6,
  /** The image was written by an unknown format version. */
  ImageUnsupported: 7,
  /** The operation is not supported on this object or HAL. */
  NotSupported: 8,
  /** The kernel has been shut down. */
  Shutdown: 9,
  /** A name does not resolve. */
  NameNotFound: 10,
  /** A name is already bound. */
  NameExists: 11,
  /** A wait ran out of time. */
  TimedOut: 12,
  /** The image is held by another opener (a running system or a repair). */
  ImageBusy: 13,
  /** The image or object was opened read-only; writes are refused. */
  ReadOnly: 14,
  /**
   * One object's metadata or structure is damaged: that object is quarantined,
   * the rest of the system stays usable.
   */
  ObjectDamaged: 15,
  /** The calling thread is being killed: it must end (see docs/THREADS.md). */
  Killed: 16,
  /**
   * The object is in use by a thread that cannot let go of it now (it maps
   * the object and does not enter the kernel): try again once it has ended.
   */
  Busy: 17,
} as const;

/** One of the values of {@linkcode ErrorCode}. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

const NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([k, v]) => [v, k]));

/** The symbolic name of an error code (`"ObjectNotFound"`). */
export function errorName(code: ErrorCode): string {
  return NAMES.get(code) ?? `Error${code}`;
}

/**
 * An error the kernel or libtwz reports, with a code callers can switch on.
 *
 * @example
 * ```ts
 * import { ErrorCode, TwzError } from "@twz/kernel/abi";
 * try {
 *   throw new TwzError(ErrorCode.ObjectNotFound, "No object 5f00…");
 * } catch (e) {
 *   if (e instanceof TwzError && e.code === ErrorCode.ObjectNotFound) console.log("gone");
 * }
 * ```
 */
export class TwzError extends Error {
  /** The code, one of {@linkcode ErrorCode}. */
  readonly code: ErrorCode;
  /**
   * Make an error of kind `code`.
   *
   * @param code What kind of failure.
   * @param message One line naming what failed and why.
   * @param options Standard error options (`cause`).
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TwzError";
    this.code = code;
  }
}
