// The messages of the queue tests and bench: 64 bytes, the producer's number
// and the message's sequence number, then a pattern made of both (so a torn or
// mixed-up message is seen).

/** Bytes of a message. */
export const MESSAGE_BYTES = 64;

/** Fill `m` (64 bytes) with message `seq` of producer `id`. */
export function fill(m: Uint8Array, id: number, seq: number): void {
  const v = new DataView(m.buffer, m.byteOffset, MESSAGE_BYTES);
  v.setUint32(0, id, true);
  v.setUint32(4, seq, true);
  for (let k = 8; k < MESSAGE_BYTES; k++) m[k] = (id * 31 + seq * 7 + k) & 0xff;
}

/**
 * The producer and sequence number of a message.
 *
 * @throws {Error} The message is not one `fill` made.
 */
export function parse(m: Uint8Array): { id: number; seq: number } {
  if (m.length !== MESSAGE_BYTES) throw new Error(`a message of ${m.length} bytes, not 64`);
  const v = new DataView(m.buffer, m.byteOffset, MESSAGE_BYTES);
  const id = v.getUint32(0, true), seq = v.getUint32(4, true);
  for (let k = 8; k < MESSAGE_BYTES; k++) {
    if (m[k] !== ((id * 31 + seq * 7 + k) & 0xff)) {
      throw new Error(`message ${seq} of producer ${id} is damaged at byte ${k}`);
    }
  }
  return { id, seq };
}

/** Names of the test's objects. */
export const PATHS = {
  queue: "/mq/queue",
  record: "/mq/record",
  state: (id: number): string => `/mq/producer${id}`,
} as const;

/**
 * The consumers' shared record (written only while holding the queue's lock,
 * in the transaction of each receive): total u32, then per producer the next
 * sequence number due, u32 each.
 */
export const RECORD = { total: 0, next: (id: number): number => 8 + 4 * id } as const;
