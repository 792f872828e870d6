/**
 * The kernel end of a thread's system-call channel (layout in
 * `abi/channel.ts`): {@linkcode ChannelServer} waits for a request with
 * `Atomics.waitAsync` (the kernel's event loop stays free), decodes it, lets
 * the thread's {@linkcode ThreadPort} answer (at once, or later when the
 * answer is deferred), writes the answer frame with the thread's mapping
 * updates, and wakes the thread. {@linkcode openThreadChannel} makes the
 * channel, the port and the server for a new thread.
 *
 * Parking: {@linkcode ChannelServer.park} waits until the thread sits inside
 * a call and holds that call's answer back until
 * {@linkcode ChannelServer.unpark}. Meanwhile the thread runs no code, so the
 * kernel may move or delete objects it maps; the held answer then carries
 * the updates (cooperative unmap). A thread asleep in `thread_sync` in its
 * Worker (the channel's `SLEEP` word) counts as parked once the kernel marks
 * it `SLEEP_PARKED`: it calls the kernel before it runs on.
 *
 * @module
 */
import {
  CALL_ANSWER,
  CALL_CLOSED,
  CALL_REQUEST,
  CHANNEL_DATA,
  channelData,
  decodeRequest,
  encodeInto,
  encodeResponse,
  KILL,
  LENGTH,
  newChannel,
  type ObjID,
  SLEEP,
  SLEEP_DIRECT,
  SLEEP_HANDLE,
  SLEEP_NONE,
  SLEEP_OFFSET,
  SLEEP_PARKED,
  STATE,
  STATUS_ERROR,
  STATUS_RANGE_ERROR,
  STATUS_TYPE_ERROR,
  TwzError,
  UPDATE_BYTES,
  Writer,
} from "../abi/mod.ts";
import type { Kernel } from "../kernel.ts";
import { type ThreadCalls, ThreadPort } from "./_dispatch.ts";

export type { ThreadCalls } from "./_dispatch.ts";
export { ThreadPort } from "./_dispatch.ts";

/** Write the answer frame for one call into `into`; returns the bytes used. */
function encodeAnswer(
  into: Uint8Array,
  updates: number[],
  count: number,
  result: unknown,
  error: unknown,
): number {
  const dv = new DataView(into.buffer, into.byteOffset, into.byteLength);
  const body = 4 + count * UPDATE_BYTES;
  if (into.length < body) throw new RangeError("channel too small"); // never: 64 KiB minimum
  dv.setUint32(0, count, true);
  for (let i = 0; i < count; i++) {
    const at = 4 + i * UPDATE_BYTES;
    dv.setUint32(at, updates[4 * i]!, true);
    dv.setUint32(at + 4, updates[4 * i + 1]!, true);
    dv.setFloat64(at + 8, updates[4 * i + 2]!, true);
    dv.setFloat64(at + 16, updates[4 * i + 3]!, true);
  }
  const rest = into.subarray(body);
  if (error === undefined) return body + encodeResponse(rest, result);
  if (error instanceof TwzError) return body + encodeResponse(rest, undefined, error);
  const w = new Writer(rest);
  w.u32(
    error instanceof RangeError
      ? STATUS_RANGE_ERROR
      : error instanceof TypeError
      ? STATUS_TYPE_ERROR
      : STATUS_ERROR,
  );
  w.value(error instanceof Error ? error.message : String(error));
  return body + w.at;
}

/**
 * Microseconds the kernel polls a channel after each answer before it sleeps
 * (the default of `spinUs`): a thread calling again within it is served
 * without waking the kernel's thread, which is most of a round trip.
 */
export const KERNEL_SPIN_US = 20;

/** The kernel's server for one thread's channel (see the module doc). */
export class ChannelServer {
  readonly #channel: SharedArrayBuffer;
  readonly #state: Int32Array;
  readonly #port: ThreadPort;
  #closed = false;
  #inCall = false;
  #parks = 0;
  #parkWaiters: { resolve: (ok: boolean) => void; timer: ReturnType<typeof setTimeout> }[] = [];
  #unparked: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #updates: number[] = [];
  /** Resolves at close: a deferred answer is not waited for any longer. */
  readonly #closing = Promise.withResolvers<void>();
  /** Calls answered so far. */
  calls = 0;
  /** Resolves when the server has stopped (after {@linkcode ChannelServer.close}). */
  readonly done: Promise<void>;

  readonly #spinUs: number;

  /**
   * Serve `channel` with `port`; starts at once.
   *
   * @param channel The channel (from `newChannel`).
   * @param port The thread's port.
   * @param options `spinUs`: after an answer, keep the kernel's thread
   *   spinning this many µs for the thread's next call before it waits with
   *   `Atomics.waitAsync` (whose wake-up costs tens of µs on an idle virtual
   *   machine). That blocks the kernel's event loop meanwhile (at most this
   *   long per answer; every 256 calls in a row the server yields to the
   *   event loop) and burns a CPU while it polls.
   *   Default {@linkcode KERNEL_SPIN_US}; 0 turns spinning off.
   */
  constructor(
    channel: SharedArrayBuffer,
    port: ThreadPort,
    options: { spinUs?: number } = {},
  ) {
    this.#channel = channel;
    this.#state = new Int32Array(channel, 0, CHANNEL_DATA >> 2);
    this.#port = port;
    this.#spinUs = options.spinUs ?? KERNEL_SPIN_US;
    this.done = this.#serve();
  }

  /** The thread's port. */
  get port(): ThreadPort {
    return this.#port;
  }

  /** Whether the thread has been told to die ({@linkcode ChannelServer.kill}). */
  get killed(): boolean {
    return Atomics.load(this.#state, KILL) !== 0;
  }

  /** Whether the server has stopped (closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Whether the thread sits inside a call now (its request is posted and not
   * yet answered): it runs no code until the answer. False once killed (a
   * killed thread may run again at once).
   */
  get inCall(): boolean {
    return Atomics.load(this.#state, STATE) === CALL_REQUEST && !this.killed;
  }

  /** Whether the thread sleeps in `thread_sync` in its Worker (not inside a call). */
  get sleeping(): boolean {
    return Atomics.load(this.#state, SLEEP) !== SLEEP_NONE && !this.#closed;
  }

  /**
   * Park a thread asleep in its Worker: mark it `SLEEP_PARKED`, so that it
   * calls the kernel (and hears the mapping updates) before it runs on.
   * Whether it is so parked now.
   */
  #parkSleeper(): boolean {
    const s = this.#state;
    const was = Atomics.compareExchange(s, SLEEP, SLEEP_DIRECT, SLEEP_PARKED);
    if (was === SLEEP_DIRECT) this.#nudge();
    return was === SLEEP_DIRECT || was === SLEEP_PARKED;
  }

  /**
   * Wake the thread if it sleeps in its Worker: notify the word it waits on
   * (every sleeper of that word wakes; the others answer 0, a spurious wake).
   */
  #nudge(): void {
    const s = this.#state;
    if (Atomics.load(s, SLEEP) === SLEEP_NONE) return;
    const e = this.#port.extentOf(s[SLEEP_HANDLE]!);
    const off = s[SLEEP_OFFSET]! >>> 0;
    if (
      e !== undefined && e.words && e.bytes.buffer instanceof SharedArrayBuffer &&
      off % 4 === 0 && off + 4 <= e.bytes.length
    ) {
      Atomics.notify(e.i32, off / 4);
    }
  }

  /**
   * {@linkcode ChannelServer.park}, synchronously, for the kernel's own
   * synchronous calls (grow, delete): block the kernel (`Atomics.wait`) at
   * most `timeoutMs` until the thread sits inside a call, or the server is
   * closed. No unpark is needed: the answer is written by the kernel's event
   * loop, which is busy in the caller until the change is done, and it then
   * carries the mapping updates.
   *
   * @returns `true` when parked (or closed), `false` on timeout or when the
   * thread is being killed.
   */
  parkSync(timeoutMs: number): boolean {
    const s = this.#state;
    const end = performance.now() + timeoutMs;
    for (;;) {
      if (this.#closed) return true;
      if (this.killed) return false;
      const st = Atomics.load(s, STATE);
      if (st === CALL_REQUEST || st === CALL_CLOSED || this.#parkSleeper()) return true;
      const left = end - performance.now();
      if (left <= 0) return false;
      // In slices: a thread going to sleep in its Worker does not touch STATE.
      Atomics.wait(s, STATE, st, Math.min(left, 1));
    }
  }

  /**
   * Kill the thread cooperatively: set the kill word and wake it (also from
   * a sleep in its Worker). The call it waits in, and every later one,
   * throws `TwzError(Killed)`.
   */
  kill(): void {
    Atomics.store(this.#state, KILL, 1);
    Atomics.notify(this.#state, STATE);
    this.#nudge();
  }

  /**
   * Wait until the thread sits inside a call (it runs no code then), and hold
   * that call's answer back until {@linkcode ChannelServer.unpark}. Resolves
   * `true` once parked (at once when it already waits for an answer, or the
   * server is closed), `false` after `timeoutMs` without a call (the thread
   * is busy or spinning; it is not parked then, and needs no unpark) or when
   * it is being killed.
   */
  park(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(true);
    if (this.killed) return Promise.resolve(false);
    this.#parks++;
    this.#unparked ??= Promise.withResolvers<void>();
    if (this.#inCall || this.#parkSleeper()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const end = performance.now() + timeoutMs;
      const waiter: { resolve: (ok: boolean) => void; timer: ReturnType<typeof setTimeout> } = {
        resolve,
        timer: 0 as unknown as ReturnType<typeof setTimeout>,
      };
      // Look now and then whether it went to sleep in its Worker (a call
      // resolves the waiter from the serving loop).
      const look = () => {
        if (this.#parkSleeper()) {
          this.#parkWaiters = this.#parkWaiters.filter((w) => w !== waiter);
          resolve(true);
        } else if (performance.now() >= end) {
          this.#parkWaiters = this.#parkWaiters.filter((w) => w !== waiter);
          resolve(false);
          this.unpark();
        } else waiter.timer = setTimeout(look, Math.min(5, Math.max(0, end - performance.now())));
      };
      waiter.timer = setTimeout(look, Math.min(5, timeoutMs));
      this.#parkWaiters.push(waiter);
    });
  }

  /** Release one {@linkcode ChannelServer.park}; the held answer goes when none is left. */
  unpark(): void {
    if (this.#parks === 0) return;
    if (--this.#parks === 0) {
      const u = this.#unparked;
      this.#unparked = undefined;
      u?.resolve();
    }
  }

  /**
   * Stop serving (the thread has ended, or is being torn down): a call it
   * waits in throws `Shutdown`. Pending parks resolve `true`. Forgets the
   * thread's mappings. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#state, STATE, CALL_CLOSED);
    Atomics.notify(this.#state, STATE);
    for (const w of this.#parkWaiters) {
      clearTimeout(w.timer);
      w.resolve(true);
    }
    this.#parkWaiters = [];
    this.#parks = 0;
    this.#unparked?.resolve();
    this.#unparked = undefined;
    this.#port.release();
    this.#closing.resolve();
  }

  /** Hold while parked: wake the parkers, then wait for the last unpark. */
  async #hold(): Promise<void> {
    for (const w of this.#parkWaiters) {
      clearTimeout(w.timer);
      w.resolve(true);
    }
    this.#parkWaiters = [];
    while (this.#unparked && !this.#closed) await this.#unparked.promise;
  }

  async #serve(): Promise<void> {
    const s = this.#state;
    // Turns taken without giving the event loop a chance: a thread that
    // flips its state word without waiting must not starve the kernel.
    let eager = 0;
    const spin = this.#spinUs / 1000, limit = spin > 0 ? 256 : 32;
    while (!this.#closed && !this.killed) {
      if (++eager > limit) {
        eager = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
        continue;
      }
      let st = Atomics.load(s, STATE);
      if (st === CALL_ANSWER && spin > 0) {
        // A thread that calls again at once finds the kernel awake.
        const until = performance.now() + spin;
        for (let i = 1; (st = Atomics.load(s, STATE)) === CALL_ANSWER; i++) {
          if ((i & 63) === 0 && performance.now() > until) break;
        }
      }
      if (st !== CALL_REQUEST) {
        if (st === CALL_CLOSED) break;
        const w = Atomics.waitAsync(s, STATE, st);
        if (w.async) {
          await w.value;
          eager = 0;
        }
        continue;
      }
      this.#inCall = true;
      if (this.#parks > 0) await this.#hold();
      let result: unknown, error: unknown;
      try {
        const { sys, args } = decodeRequest(channelData(this.#channel), s[LENGTH]!);
        result = this.#port.dispatch(sys, args);
        if (result instanceof Promise) result = await Promise.race([result, this.#closing.promise]);
      } catch (e) {
        error = e ?? new Error("unknown error");
      }
      if (this.#parks > 0) await this.#hold();
      this.#inCall = false;
      // A killed thread reads no answer any more (a deferred one settling late is dropped).
      if (this.#closed || this.killed) break;
      const updates = this.#updates;
      updates.length = 0;
      let count: number;
      try {
        count = this.#port.updates(updates);
      } catch (e) {
        count = updates.length / 4;
        error ??= e;
      }
      try {
        s[LENGTH] = encodeInto(
          this.#channel,
          (into) => encodeAnswer(into, updates, count, result, error),
        );
      } catch (e) {
        s[LENGTH] = encodeInto(
          this.#channel,
          (into) => encodeAnswer(into, updates, count, undefined, e),
        );
      }
      this.calls++;
      Atomics.store(s, STATE, CALL_ANSWER);
      Atomics.notify(s, STATE);
    }
  }
}

/** One thread's end of the channel: what {@linkcode openThreadChannel} makes. */
export interface ThreadChannel {
  /**
   * The channel parts of the thread's `ThreadInit`; post the init with
   * `transfer: [init.memory]`.
   */
  init: { channel: SharedArrayBuffer; memory: MessagePort; region: SharedArrayBuffer | null };
  /** The thread's kernel-side port (its mapping table). */
  port: ThreadPort;
  /** The server, already waiting for the thread's first call. */
  server: ChannelServer;
}

/**
 * Make a thread's channel: the shared buffer, the memory port pair, the
 * thread's {@linkcode ThreadPort} and a started {@linkcode ChannelServer}.
 *
 * @param kernel The kernel.
 * @param tid The thread's number.
 * @param calls Thread calls (the thread manager).
 * @param options Server options (see the {@linkcode ChannelServer} constructor);
 *   `principal`: who the thread is (default: thread `tid` with no security
 *   contexts; pass the thread's live array of contexts).
 */
export function openThreadChannel(
  kernel: Kernel,
  tid: number,
  calls: ThreadCalls,
  options: {
    spinUs?: number;
    principal?: { readonly admin: false; readonly tid: number; readonly contexts: ObjID[] };
  } = {},
): ThreadChannel {
  const share = kernel.hal.region.share();
  const region = share.kind === "shared-memory" ? share.buffer : null;
  const { port1, port2 } = new MessageChannel();
  const channel = newChannel();
  const port = new ThreadPort(
    kernel,
    tid,
    calls,
    port1,
    region,
    share.kind === "file",
    options.principal,
  );
  const server = new ChannelServer(channel, port, options);
  // The kernel's end only sends: it must not keep the event loop alive.
  (port1 as MessagePort & { unref?: () => void }).unref?.();
  return { init: { channel, memory: port2, region }, port, server };
}
