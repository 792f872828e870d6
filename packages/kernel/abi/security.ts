/**
 * Security: signed capabilities, delegations, keys and security contexts —
 * the part of the kernel/user contract both sides share (byte layouts,
 * signing and verifying through WebCrypto, key-derived object IDs). The
 * layouts, the pinned Twizzler commit they follow and the threat model are in
 * docs/SECURITY.md.
 *
 * - A **capability** grants a security context (`accessor`) protections on
 *   an object (`target`), signed with the target's key (the key object named
 *   by the target's `kuid`). Its signed bytes are Twizzler's own 78-byte
 *   serialization ({@linkcode serializeCap}); the signature is ECDSA P-256
 *   (r‖s, 64 bytes) over the SHA-256 of those bytes, or Ed25519 when
 *   {@linkcode CapFlag.Ed25519} is set.
 * - A **delegation** is a narrower grant issued by a holder: signed with the
 *   key of the context that holds its parent (`provider`), which must carry
 *   {@linkcode CapFlag.Delegate}; the chain ends in a capability.
 * - A **grant** is either, as stored in a context and passed to the kernel:
 *   {@linkcode encodeGrant} / {@linkcode decodeGrant}.
 *
 * @module
 */
import { ErrorCode, TwzError } from "./errors.ts";
import type { ObjID } from "./id.ts";

/**
 * Protection bits of capabilities and masks. READ, WRITE and EXEC are
 * Twizzler's (`twizzler_rt_abi::object::Protections`); USE is
 * `twizzler_abi::security::Permissions::USE`; DELETE is ours.
 */
export const SecProt = {
  /** May be read (mapped readable). */
  Read: 1,
  /** May be written. */
  Write: 2,
  /** May be executed; a gate call needs it. */
  Exec: 4,
  /** May be used: attach to a security context (the object is a context). */
  Use: 8,
  /** May be deleted. */
  Delete: 16,
  /** Every bit. */
  All: 31,
} as const;

/**
 * Bits of a capability's `flags` (u16). Blake3 and Sha256 are Twizzler's
 * `CapFlags` (the hash of the serialization); the rest are ours.
 */
export const CapFlag = {
  /** Twizzler's Blake3 hash: not supported here (such a grant is refused). */
  Blake3: 1,
  /** SHA-256 of the serialization is what is signed (required). */
  Sha256: 2,
  /** The signature is Ed25519 (else ECDSA P-256). */
  Ed25519: 0x100,
  /** The accessor may delegate this grant (narrowed) to other contexts. */
  Delegate: 0x200,
} as const;

/** A signing scheme. */
export type KeyScheme = "ecdsa-p256" | "ed25519";

/**
 * A gate: the range of an object a grant covers, and the alignment of entry
 * points in it. A grant maps the object only when its gate covers all of it
 * (offset 0, align 1, length at least the object's size); a narrower gate
 * admits gate calls at aligned offsets in `[offset, offset + length)`.
 */
export interface Gate {
  /** First byte (u64). */
  offset: bigint;
  /** Length in bytes (u64). */
  length: bigint;
  /** Entry points are multiples of this (u64, at least 1). */
  align: bigint;
}

/** The gate of a grant over the whole object: offset 0, length 2^64 − 1, align 1. */
export const WHOLE_OBJECT: Readonly<Gate> = Object.freeze({
  offset: 0n,
  length: (1n << 64n) - 1n,
  align: 1n,
});

/** The fields a capability signs. */
export interface CapFields {
  /** The object it grants access to. */
  target: ObjID;
  /** The security context it is for. */
  accessor: ObjID;
  /** {@linkcode SecProt} bits (u16). */
  prot: number;
  /** {@linkcode CapFlag} bits (u16). */
  flags: number;
  /** Expiry: nanoseconds since the Unix epoch (u128); `0n` never expires. */
  expiry: bigint;
  /** The range it covers. */
  gate: Gate;
}

/** A signed capability (signed with the target's key). */
export interface Capability extends CapFields {
  /** Tells a capability from a delegation. */
  kind: "capability";
  /** r‖s (P-256, 64 bytes) or an Ed25519 signature (64 bytes). */
  signature: Uint8Array;
}

/**
 * A delegation: `accessor` gets at most what `parent` gives `provider`,
 * signed with the key of context `provider` (its `key`).
 */
export interface Delegation extends CapFields {
  /** Tells a delegation from a capability. */
  kind: "delegation";
  /** The delegating context: `parent.accessor`. */
  provider: ObjID;
  /** What the provider holds. */
  parent: Grant;
  /** Signature by the provider's key. */
  signature: Uint8Array;
}

/** A capability or a delegation. */
export type Grant = Capability | Delegation;

/** Length of Twizzler's capability serialization (`CAP_SERIALIZED_LEN`). */
export const CAP_SERIALIZED_LEN = 78;
/** Bytes of one link of an encoded grant (see docs/SECURITY.md). */
export const GRANT_LINK_BYTES = 160;
/** Most links in a chain: a capability and three delegations. */
export const MAX_GRANT_DEPTH = 4;

/** A key pair's bytes: what a key object and its private object hold. */
export interface KeyPairBytes {
  /** The signing scheme. */
  scheme: KeyScheme;
  /** Raw public key: 65-byte uncompressed point (P-256) or 32 bytes (Ed25519). */
  publicKey: Uint8Array;
  /** PKCS#8 DER private key. */
  privateKey: Uint8Array;
}

// ---------------------------------------------------------------------------
// Byte layouts. Offsets of one serialization (Twizzler's `Cap::serialize`,
// src/lib/twizzler-security/src/capability.rs at the pinned commit), all
// little-endian:
//
//   0  accessor u128 | 16 target u128 | 32 prot u16 | 34 flags u16
//   36 expiry u128   | 52 gate offset u64 | 60 gate length u64
//   68 gate align u64 | 76..78 zero
//
// One link of an encoded grant (GRANT_LINK_BYTES), leaf first:
//
//   0 serialization (78) | 78 kind u8 (1 capability, 2 delegation)
//   79 signature length u8 (64) | 80 signature (64) | 144 provider u128
//   (zero in a capability)
// ---------------------------------------------------------------------------

const OFF_ACCESSOR = 0;
const OFF_TARGET = 16;
const OFF_PROT = 32;
const OFF_FLAGS = 34;
const OFF_EXPIRY = 36;
const OFF_GATE_OFFSET = 52;
const OFF_GATE_LENGTH = 60;
const OFF_GATE_ALIGN = 68;
const LINK_KIND = 78;
const LINK_SIG_LEN = 79;
const LINK_SIG = 80;
const LINK_PROVIDER = 144;
const KIND_CAPABILITY = 1;
const KIND_DELEGATION = 2;
/** Bytes of every signature (P-256 r‖s and Ed25519 alike). */
const SIG_BYTES = 64;
const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;

function checkU16(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new RangeError(`"${what}" takes 0..65535 (u16), not ${v}`);
  }
}

function checkBig(what: string, v: bigint, max: bigint, type: string): void {
  if (typeof v !== "bigint" || v < 0n || v > max) {
    throw new RangeError(`"${what}" takes 0..${max} (${type}, a bigint), not ${v}`);
  }
}

function putU128(view: DataView, off: number, v: bigint): void {
  view.setBigUint64(off, v & M64, true);
  view.setBigUint64(off + 8, v >> 64n, true);
}

function getU128(view: DataView, off: number): bigint {
  return view.getBigUint64(off, true) | (view.getBigUint64(off + 8, true) << 64n);
}

/** Check `c`'s fields and write its 78-byte serialization at `off` of `view`. */
function serializeInto(view: DataView, off: number, c: CapFields): void {
  checkBig("accessor", c.accessor, M128, "u128");
  checkBig("target", c.target, M128, "u128");
  checkU16("prot", c.prot);
  checkU16("flags", c.flags);
  checkBig("expiry", c.expiry, M128, "u128");
  checkBig("gate.offset", c.gate.offset, M64, "u64");
  checkBig("gate.length", c.gate.length, M64, "u64");
  checkBig("gate.align", c.gate.align, M64, "u64");
  putU128(view, off + OFF_ACCESSOR, c.accessor);
  putU128(view, off + OFF_TARGET, c.target);
  view.setUint16(off + OFF_PROT, c.prot, true);
  view.setUint16(off + OFF_FLAGS, c.flags, true);
  putU128(view, off + OFF_EXPIRY, c.expiry);
  view.setBigUint64(off + OFF_GATE_OFFSET, c.gate.offset, true);
  view.setBigUint64(off + OFF_GATE_LENGTH, c.gate.length, true);
  view.setBigUint64(off + OFF_GATE_ALIGN, c.gate.align, true);
  view.setUint16(off + CAP_SERIALIZED_LEN - 2, 0, true);
}

function malformed(what: string): TwzError {
  return new TwzError(ErrorCode.InvalidArgument, `Malformed grant: ${what}`);
}

/**
 * Twizzler's serialization of a capability's fields (78 bytes,
 * little-endian): accessor 0–15, target 16–31, protections 32–33, flags
 * 34–35, expiry 36–51, gate offset 52–59, length 60–67, align 68–75, two
 * zero bytes.
 *
 * @param c The fields (a {@linkcode Capability} or {@linkcode Delegation}
 *   works too: only the signed fields are read).
 * @returns A new 78-byte array.
 * @throws {RangeError} A field does not fit its width (IDs and expiry
 *   u128, protections and flags u16, gate fields u64).
 * @example Serialize a capability's fields
 * ```ts
 * import { CAP_SERIALIZED_LEN, CapFlag, SecProt, serializeCap, WHOLE_OBJECT } from "@twz/kernel/abi";
 * const bytes = serializeCap({
 *   target: 2n << 64n, accessor: 3n << 64n, prot: SecProt.Read,
 *   flags: CapFlag.Sha256, expiry: 0n, gate: WHOLE_OBJECT,
 * });
 * console.log(bytes.length === CAP_SERIALIZED_LEN, bytes[24]); // true 2
 * ```
 */
export function serializeCap(c: CapFields): Uint8Array {
  const out = new Uint8Array(CAP_SERIALIZED_LEN);
  serializeInto(new DataView(out.buffer), 0, c);
  return out;
}

/**
 * The scheme a grant's flags select.
 *
 * @param flags {@linkcode CapFlag} bits.
 * @returns `"ed25519"` when {@linkcode CapFlag.Ed25519} is set, else `"ecdsa-p256"`.
 */
export function schemeOf(flags: number): KeyScheme {
  return (flags & CapFlag.Ed25519) !== 0 ? "ed25519" : "ecdsa-p256";
}

/** Links of `g`, leaf first; throws when the chain is too deep or not a grant. */
function linksOf(g: Grant): Grant[] {
  const links: Grant[] = [];
  for (let x: Grant = g;;) {
    if (links.length === MAX_GRANT_DEPTH) {
      throw malformed(
        `more than ${MAX_GRANT_DEPTH} links (a capability and at most ${
          MAX_GRANT_DEPTH - 1
        } delegations)`,
      );
    }
    links.push(x);
    if (x.kind === "capability") return links;
    if (x.kind !== "delegation") {
      throw malformed(
        `link ${links.length} has kind ${
          JSON.stringify((x as { kind: unknown }).kind)
        } (not "capability" or "delegation")`,
      );
    }
    x = x.parent;
  }
}

/**
 * Encode a grant (leaf first, then each parent): what a context stores.
 * Each link is {@linkcode GRANT_LINK_BYTES} long (the layout is in
 * docs/SECURITY.md); the last link is the capability.
 *
 * @param g The grant.
 * @returns `links × 160` bytes.
 * @throws {TwzError} `InvalidArgument`: more than {@linkcode MAX_GRANT_DEPTH}
 *   links or a signature that is not 64 bytes.
 * @throws {RangeError} A field does not fit its width.
 * @example Round trip
 * ```ts
 * import { CapFlag, decodeGrant, encodeGrant, SecProt, WHOLE_OBJECT } from "@twz/kernel/abi";
 * const bytes = encodeGrant({
 *   kind: "capability", target: 2n << 64n, accessor: 3n << 64n, prot: SecProt.Read,
 *   flags: CapFlag.Sha256, expiry: 0n, gate: WHOLE_OBJECT, signature: new Uint8Array(64),
 * });
 * console.log(bytes.length, decodeGrant(bytes).kind); // 160 "capability"
 * ```
 */
export function encodeGrant(g: Grant): Uint8Array {
  const links = linksOf(g);
  const out = new Uint8Array(links.length * GRANT_LINK_BYTES);
  const view = new DataView(out.buffer);
  for (let i = 0; i < links.length; i++) {
    const x = links[i]!;
    const base = i * GRANT_LINK_BYTES;
    if (!(x.signature instanceof Uint8Array) || x.signature.length !== SIG_BYTES) {
      throw malformed(`link ${i + 1} has a ${x.signature?.length}-byte signature (must be 64)`);
    }
    serializeInto(view, base, x);
    out[base + LINK_KIND] = x.kind === "capability" ? KIND_CAPABILITY : KIND_DELEGATION;
    out[base + LINK_SIG_LEN] = SIG_BYTES;
    out.set(x.signature, base + LINK_SIG);
    if (x.kind === "delegation") {
      checkBig("provider", x.provider, M128, "u128");
      putU128(view, base + LINK_PROVIDER, x.provider);
    }
  }
  return out;
}

/**
 * Decode {@linkcode encodeGrant}'s bytes. Throws `TwzError(InvalidArgument)`
 * naming what is wrong (length, kind, depth, signature length). Only the
 * format is checked: whether signatures verify, a delegation names its
 * parent's accessor as provider and narrows it is the verifier's business.
 *
 * @param bytes An encoded grant (copied: the result does not alias it).
 * @returns The grant, leaf first (`parent` chains to the capability).
 * @throws {TwzError} `InvalidArgument`: not a whole number of 160-byte links,
 *   more than {@linkcode MAX_GRANT_DEPTH} links, an unknown kind, a
 *   capability before the last link or a delegation as the last, a signature
 *   length other than 64, non-zero reserved bytes or a capability with a
 *   provider.
 * @example Refusing a truncated grant
 * ```ts
 * import { decodeGrant, TwzError } from "@twz/kernel/abi";
 * try {
 *   decodeGrant(new Uint8Array(100));
 * } catch (e) {
 *   console.log(e instanceof TwzError); // true
 * }
 * ```
 */
export function decodeGrant(bytes: Uint8Array): Grant {
  const n = bytes.length / GRANT_LINK_BYTES;
  if (bytes.length === 0 || !Number.isInteger(n)) {
    throw malformed(
      `${bytes.length} bytes is not a whole number of ${GRANT_LINK_BYTES}-byte links`,
    );
  }
  if (n > MAX_GRANT_DEPTH) {
    throw malformed(
      `${n} links (at most ${MAX_GRANT_DEPTH}: a capability and ${
        MAX_GRANT_DEPTH - 1
      } delegations)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let grant: Grant | undefined;
  for (let i = n - 1; i >= 0; i--) {
    const base = i * GRANT_LINK_BYTES;
    const kind = bytes[base + LINK_KIND]!;
    const link = `link ${i + 1} of ${n}`;
    if (kind !== KIND_CAPABILITY && kind !== KIND_DELEGATION) {
      throw malformed(`${link} has kind ${kind} (1 capability, 2 delegation)`);
    }
    if (i === n - 1 && kind !== KIND_CAPABILITY) {
      throw malformed(`${link} is a delegation: the last link must be a capability`);
    }
    if (i < n - 1 && kind !== KIND_DELEGATION) {
      throw malformed(`${link} is a capability: only the last link may be`);
    }
    const sigLen = bytes[base + LINK_SIG_LEN]!;
    if (sigLen !== SIG_BYTES) {
      throw malformed(`${link} has signature length ${sigLen} (must be ${SIG_BYTES})`);
    }
    if (view.getUint16(base + CAP_SERIALIZED_LEN - 2, true) !== 0) {
      throw malformed(`${link} has non-zero reserved bytes 76-77`);
    }
    const signature = bytes.slice(base + LINK_SIG, base + LINK_SIG + SIG_BYTES);
    const target = getU128(view, base + OFF_TARGET);
    const accessor = getU128(view, base + OFF_ACCESSOR);
    const prot = view.getUint16(base + OFF_PROT, true);
    const flags = view.getUint16(base + OFF_FLAGS, true);
    const expiry = getU128(view, base + OFF_EXPIRY);
    const gate: Gate = {
      offset: view.getBigUint64(base + OFF_GATE_OFFSET, true),
      length: view.getBigUint64(base + OFF_GATE_LENGTH, true),
      align: view.getBigUint64(base + OFF_GATE_ALIGN, true),
    };
    if (kind === KIND_CAPABILITY) {
      if (
        view.getBigUint64(base + LINK_PROVIDER, true) |
        view.getBigUint64(base + LINK_PROVIDER + 8, true)
      ) {
        throw malformed(`${link} is a capability with a non-zero provider`);
      }
      grant = { kind: "capability", target, accessor, prot, flags, expiry, gate, signature };
    } else {
      const provider = getU128(view, base + LINK_PROVIDER);
      grant = {
        kind: "delegation",
        target,
        accessor,
        prot,
        flags,
        expiry,
        gate,
        provider,
        parent: grant!,
        signature,
      };
    }
  }
  return grant!;
}

/**
 * The bytes a grant's signature covers: for a capability the SHA-256 of
 * {@linkcode serializeCap}; for a delegation the SHA-256 of the
 * serialization ‖ provider (16 bytes LE) ‖ SHA-256 of the encoded parent.
 *
 * @param g The grant (its signature is not read).
 * @returns 32 bytes: the message given to ECDSA-P256-SHA256 or Ed25519.
 * @throws {RangeError} A field does not fit its width.
 * @throws {TwzError} `InvalidArgument`: the parent chain is malformed.
 */
export function signedMessage(g: Grant): Uint8Array {
  if (g.kind !== "delegation") {
    serializeInto(MSG_VIEW, 0, g);
    return sha256(MSG.subarray(0, CAP_SERIALIZED_LEN));
  }
  const parentHash = sha256(encodeGrant(g.parent));
  checkBig("provider", g.provider, M128, "u128");
  serializeInto(MSG_VIEW, 0, g);
  putU128(MSG_VIEW, CAP_SERIALIZED_LEN, g.provider);
  MSG.set(parentHash, CAP_SERIALIZED_LEN + 16);
  return sha256(MSG);
}

/**
 * {@linkcode signedMessage} of link `link` of an encoded grant, straight
 * from its bytes: no decoding, no re-serialization (the kernel's
 * verification path). The serialization in the bytes is what is hashed, so
 * call it on bytes {@linkcode decodeGrant} accepted: for those it equals
 * `signedMessage` of that link.
 *
 * @param encoded An encoded grant ({@linkcode encodeGrant}).
 * @param link The link, 0 = the leaf (the grant itself).
 * @returns 32 bytes.
 * @throws {RangeError} `link` is not a link of `encoded`.
 * @example The leaf's message
 * ```ts
 * import { CapFlag, encodeGrant, grantMessage, signedMessage, WHOLE_OBJECT, type Capability } from "@twz/kernel/abi";
 * const cap: Capability = {
 *   kind: "capability", target: 2n << 64n, accessor: 3n << 64n, prot: 1,
 *   flags: CapFlag.Sha256, expiry: 0n, gate: WHOLE_OBJECT, signature: new Uint8Array(64),
 * };
 * const same = grantMessage(encodeGrant(cap)).join() === signedMessage(cap).join();
 * console.log(same); // true
 * ```
 */
export function grantMessage(encoded: Uint8Array, link = 0): Uint8Array {
  const base = link * GRANT_LINK_BYTES;
  if (!Number.isInteger(link) || link < 0 || base + GRANT_LINK_BYTES > encoded.length) {
    throw new RangeError(`link ${link} is not a link of a ${encoded.length}-byte grant`);
  }
  if (encoded[base + LINK_KIND] !== KIND_DELEGATION) {
    return sha256(encoded.subarray(base, base + CAP_SERIALIZED_LEN));
  }
  const parentHash = sha256(encoded.subarray(base + GRANT_LINK_BYTES));
  MSG.set(encoded.subarray(base, base + CAP_SERIALIZED_LEN));
  MSG.set(encoded.subarray(base + LINK_PROVIDER, base + GRANT_LINK_BYTES), CAP_SERIALIZED_LEN);
  MSG.set(parentHash, CAP_SERIALIZED_LEN + 16);
  return sha256(MSG);
}

/** Scratch for signedMessage: serialization ‖ provider ‖ parent hash (126 bytes). */
const MSG = new Uint8Array(CAP_SERIALIZED_LEN + 16 + 32);
const MSG_VIEW = new DataView(MSG.buffer);

// ---------------------------------------------------------------------------
// WebCrypto.
// ---------------------------------------------------------------------------

const ECDSA_KEY: EcKeyImportParams = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SIGN: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const ED25519: Algorithm = { name: "Ed25519" };

function keyAlgorithm(scheme: KeyScheme): EcKeyImportParams | Algorithm {
  if (scheme === "ecdsa-p256") return ECDSA_KEY;
  if (scheme === "ed25519") return ED25519;
  throw new TypeError(`"${scheme}" is not a key scheme ("ecdsa-p256" or "ed25519")`);
}

function signAlgorithm(scheme: KeyScheme): EcdsaParams | Algorithm {
  return scheme === "ed25519" ? ED25519 : ECDSA_SIGN;
}

/** `bytes` as WebCrypto takes it (an ArrayBuffer-backed view). */
function buf(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes) as Uint8Array<ArrayBuffer>;
}

/**
 * A new key pair (WebCrypto, extractable).
 *
 * @param scheme `"ecdsa-p256"` or `"ed25519"`.
 * @returns The raw public key and the PKCS#8 private key.
 * @throws {TypeError} An unknown scheme.
 * @example Make a pair and sign with it
 * ```ts
 * import { CapFlag, generateKeyPair, signCapability, WHOLE_OBJECT } from "@twz/kernel/abi";
 * const pair = await generateKeyPair("ed25519");
 * const cap = await signCapability({
 *   target: 2n << 64n, accessor: 3n << 64n, prot: 1,
 *   flags: CapFlag.Sha256 | CapFlag.Ed25519, expiry: 0n, gate: WHOLE_OBJECT,
 * }, pair.privateKey);
 * console.log(pair.publicKey.length, cap.signature.length); // 32 64
 * ```
 */
export async function generateKeyPair(scheme: KeyScheme): Promise<KeyPairBytes> {
  const pair = await crypto.subtle.generateKey(keyAlgorithm(scheme), true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const [publicKey, privateKey] = await Promise.all([
    crypto.subtle.exportKey("raw", pair.publicKey),
    crypto.subtle.exportKey("pkcs8", pair.privateKey),
  ]);
  return { scheme, publicKey: new Uint8Array(publicKey), privateKey: new Uint8Array(privateKey) };
}

function checkSignable(fields: CapFields): void {
  if ((fields.flags & CapFlag.Sha256) === 0 || (fields.flags & CapFlag.Blake3) !== 0) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot sign a grant with flags 0x${
        fields.flags.toString(16)
      }: set CapFlag.Sha256 (2) and not Blake3 (1)`,
    );
  }
}

async function signWith(
  scheme: KeyScheme,
  privateKey: Uint8Array,
  message: Uint8Array,
): Promise<Uint8Array> {
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("pkcs8", buf(privateKey), keyAlgorithm(scheme), false, [
      "sign",
    ]);
  } catch (e) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot sign: the private key is not a PKCS#8 ${scheme} key`,
      { cause: e },
    );
  }
  return new Uint8Array(await crypto.subtle.sign(signAlgorithm(scheme), key, buf(message)));
}

/**
 * Sign a capability's fields with a PKCS#8 private key of `schemeOf(fields.flags)`.
 *
 * @param fields The fields; `flags` must include {@linkcode CapFlag.Sha256}.
 * @param privateKey The target key's private half (PKCS#8 DER).
 * @returns The capability (fields copied, with the 64-byte signature).
 * @throws {TwzError} `InvalidArgument`: flags without Sha256 (or with
 *   Blake3), or a private key that is not of the flags' scheme.
 */
export async function signCapability(
  fields: CapFields,
  privateKey: Uint8Array,
): Promise<Capability> {
  checkSignable(fields);
  const cap: Capability = {
    kind: "capability",
    ...copyFields(fields),
    signature: new Uint8Array(),
  };
  cap.signature = await signWith(schemeOf(fields.flags), privateKey, signedMessage(cap));
  return cap;
}

/**
 * Sign a delegation with the provider's PKCS#8 private key. Nothing checks
 * here that it narrows its parent: the verifier does.
 *
 * @param fields The delegated fields; `flags` must include {@linkcode CapFlag.Sha256}.
 * @param provider The delegating context (`parent.accessor`).
 * @param parent The grant the provider holds.
 * @param privateKey The provider key's private half (PKCS#8 DER), of `schemeOf(fields.flags)`.
 * @returns The delegation.
 * @throws {TwzError} `InvalidArgument`: bad flags or key, or a chain deeper
 *   than {@linkcode MAX_GRANT_DEPTH}.
 */
export async function signDelegation(
  fields: CapFields,
  provider: ObjID,
  parent: Grant,
  privateKey: Uint8Array,
): Promise<Delegation> {
  checkSignable(fields);
  const d: Delegation = {
    kind: "delegation",
    ...copyFields(fields),
    provider,
    parent,
    signature: new Uint8Array(SIG_BYTES),
  };
  encodeGrant(d); // refuses a chain that is too deep before signing
  d.signature = await signWith(schemeOf(fields.flags), privateKey, signedMessage(d));
  return d;
}

function copyFields(f: CapFields): CapFields {
  return {
    target: f.target,
    accessor: f.accessor,
    prot: f.prot,
    flags: f.flags,
    expiry: f.expiry,
    gate: { offset: f.gate.offset, length: f.gate.length, align: f.gate.align },
  };
}

/** P-256's field prime and curve constant b (SEC 2, secp256r1; a = -3). */
const P256_P = (1n << 256n) - (1n << 224n) + (1n << 192n) + (1n << 96n) - 1n;
const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;

/**
 * Whether 65 bytes are an uncompressed P-256 point on the curve (WebCrypto in
 * Deno imports any 65 bytes starting 0x04 without this check).
 */
function onP256(raw: Uint8Array): boolean {
  if (raw[0] !== 4) return false;
  const v = new DataView(raw.buffer, raw.byteOffset, 65);
  const u256 = (at: number) =>
    v.getBigUint64(at) << 192n | v.getBigUint64(at + 8) << 128n |
    v.getBigUint64(at + 16) << 64n | v.getBigUint64(at + 24);
  const x = u256(1), y = u256(33);
  if (x >= P256_P || y >= P256_P) return false;
  return (y * y - (x * x * x - 3n * x + P256_B)) % P256_P === 0n;
}

/**
 * Import a raw public key for verifying (WebCrypto `importKey`).
 *
 * @param scheme The key's scheme.
 * @param raw 65-byte uncompressed point (P-256) or 32 bytes (Ed25519).
 * @returns A non-extractable key for {@linkcode verifySignature}.
 * @throws {TwzError} `InvalidArgument`: the bytes are not such a key (a
 *   P-256 key must be an uncompressed point on the curve).
 * @throws {TypeError} An unknown scheme.
 */
export async function importPublicKey(scheme: KeyScheme, raw: Uint8Array): Promise<CryptoKey> {
  const algorithm = keyAlgorithm(scheme);
  if (scheme === "ecdsa-p256" && raw.length === 65 && !onP256(raw)) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      "Cannot import a 65-byte ecdsa-p256 public key: not an uncompressed point on the curve",
    );
  }
  try {
    return await crypto.subtle.importKey("raw", buf(raw), algorithm, false, ["verify"]);
  } catch (e) {
    throw new TwzError(
      ErrorCode.InvalidArgument,
      `Cannot import a ${raw.length}-byte ${scheme} public key: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * Whether `signature` is a valid signature of `message` under `key`
 * (WebCrypto `verify`; P-256 takes r‖s and hashes with SHA-256).
 *
 * @param scheme The scheme of `key` (the grant's {@linkcode schemeOf}).
 * @param key From {@linkcode importPublicKey}.
 * @param message Usually {@linkcode signedMessage}'s 32 bytes.
 * @param signature 64 bytes; any other length is simply not valid.
 * @returns `true` when it verifies.
 * @example Sign and verify
 * ```ts
 * import {
 *   CapFlag, generateKeyPair, importPublicKey, signCapability, signedMessage,
 *   verifySignature, WHOLE_OBJECT,
 * } from "@twz/kernel/abi";
 * const pair = await generateKeyPair("ecdsa-p256");
 * const cap = await signCapability({
 *   target: 2n << 64n, accessor: 3n << 64n, prot: 1,
 *   flags: CapFlag.Sha256, expiry: 0n, gate: WHOLE_OBJECT,
 * }, pair.privateKey);
 * const key = await importPublicKey("ecdsa-p256", pair.publicKey);
 * console.log(await verifySignature("ecdsa-p256", key, signedMessage(cap), cap.signature)); // true
 * ```
 */
export function verifySignature(
  scheme: KeyScheme,
  key: CryptoKey,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (signature.length !== SIG_BYTES) return Promise.resolve(false);
  return crypto.subtle.verify(signAlgorithm(scheme), key, buf(signature), buf(message));
}

// ---------------------------------------------------------------------------
// DER for ECDSA signatures (what openssl reads and writes):
// SEQUENCE { INTEGER r, INTEGER s }, X.690 DER.
// ---------------------------------------------------------------------------

function derInteger(v: Uint8Array): Uint8Array {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  const body = v.subarray(i);
  const pad = body[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(2 + pad + body.length);
  out[0] = 0x02;
  out[1] = pad + body.length;
  out.set(body, 2 + pad);
  return out;
}

/**
 * An ECDSA P-256 signature r‖s (WebCrypto's form) as DER (openssl's form).
 *
 * @param rs 64 bytes: r then s, big-endian.
 * @returns `SEQUENCE { INTEGER r, INTEGER s }`.
 * @throws {TypeError} `rs` is not 64 bytes.
 */
export function ecdsaSignatureToDer(rs: Uint8Array): Uint8Array {
  if (rs.length !== SIG_BYTES) {
    throw new TypeError(`An r‖s signature is 64 bytes, not ${rs.length}`);
  }
  const r = derInteger(rs.subarray(0, 32));
  const s = derInteger(rs.subarray(32));
  const out = new Uint8Array(2 + r.length + s.length);
  out[0] = 0x30;
  out[1] = r.length + s.length;
  out.set(r, 2);
  out.set(s, 2 + r.length);
  return out;
}

/**
 * A DER ECDSA P-256 signature (openssl's form) as r‖s (WebCrypto's form).
 *
 * @param der `SEQUENCE { INTEGER r, INTEGER s }` in DER.
 * @returns 64 bytes.
 * @throws {TypeError} Not such a DER value, or an integer longer than 32
 *   bytes or negative.
 */
export function ecdsaSignatureFromDer(der: Uint8Array): Uint8Array {
  const bad = (why: string) => new TypeError(`Not a DER ECDSA P-256 signature: ${why}`);
  if (der[0] !== 0x30) throw bad("it does not start with a SEQUENCE");
  if (der[1] !== der.length - 2) throw bad(`its length byte is not ${der.length - 2}`);
  const out = new Uint8Array(SIG_BYTES);
  let at = 2;
  for (const half of [0, 32]) {
    if (der[at] !== 0x02) throw bad("an INTEGER is missing");
    const len = der[at + 1] ?? 0;
    const body = der.subarray(at + 2, at + 2 + len);
    if (len === 0 || body.length !== len) throw bad("an INTEGER is truncated");
    if (body[0]! & 0x80) throw bad("an INTEGER is negative");
    if (len > 1 && body[0] === 0 && !(body[1]! & 0x80)) throw bad("an INTEGER is not minimal");
    const value = body[0] === 0 ? body.subarray(1) : body;
    if (value.length > 32) throw bad("an INTEGER is longer than 32 bytes");
    out.set(value, half + 32 - value.length);
    at += 2 + len;
  }
  if (at !== der.length) throw bad("bytes follow the two INTEGERs");
  return out;
}

// ---------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), synchronous. One compression function over big-endian
// words; the last one or two blocks are padded in a scratch buffer.
// ---------------------------------------------------------------------------

const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
const W = new Int32Array(64);
const H = new Int32Array(8);
const TAIL = new Uint8Array(128);

/** Process the 64-byte block at `off` of `m` into `H` (one loop: schedule and rounds). */
function compress(m: Uint8Array, off: number): void {
  let a = H[0]!, b = H[1]!, c = H[2]!, d = H[3]!, e = H[4]!, f = H[5]!, g = H[6]!, h = H[7]!;
  for (let i = 0; i < 64; i++) {
    let w: number;
    if (i < 16) {
      const j = off + 4 * i;
      w = m[j]! << 24 | m[j + 1]! << 16 | m[j + 2]! << 8 | m[j + 3]!;
    } else {
      const x = W[i - 15]!, y = W[i - 2]!;
      const s0 = (x >>> 7 | x << 25) ^ (x >>> 18 | x << 14) ^ (x >>> 3);
      const s1 = (y >>> 17 | y << 15) ^ (y >>> 19 | y << 13) ^ (y >>> 10);
      w = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
    }
    W[i] = w;
    const S1 = (e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7);
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i]! + w) | 0;
    const S0 = (a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10);
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  H[0] = (H[0]! + a) | 0;
  H[1] = (H[1]! + b) | 0;
  H[2] = (H[2]! + c) | 0;
  H[3] = (H[3]! + d) | 0;
  H[4] = (H[4]! + e) | 0;
  H[5] = (H[5]! + f) | 0;
  H[6] = (H[6]! + g) | 0;
  H[7] = (H[7]! + h) | 0;
}

/** Write `v` big-endian at `at` of `out`. */
function putBE(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = v >>> 16;
  out[at + 2] = v >>> 8;
  out[at + 3] = v;
}

/**
 * SHA-256, synchronously (for IDs at create; WebCrypto is asynchronous).
 * FIPS 180-4; agrees with `crypto.subtle.digest("SHA-256", …)`.
 *
 * @param data The message.
 * @returns A new 32-byte digest.
 * @example Hash of the empty message
 * ```ts
 * import { sha256 } from "@twz/kernel/abi";
 * const hex = Array.from(sha256(new Uint8Array()), (b) => b.toString(16).padStart(2, "0"));
 * console.log(hex.join("").slice(0, 8)); // "e3b0c442"
 * ```
 */
export function sha256(data: Uint8Array): Uint8Array {
  // The initial hash value (FIPS 180-4 5.3.3).
  H[0] = 0x6a09e667;
  H[1] = 0xbb67ae85;
  H[2] = 0x3c6ef372;
  H[3] = 0xa54ff53a;
  H[4] = 0x510e527f;
  H[5] = 0x9b05688c;
  H[6] = 0x1f83d9ab;
  H[7] = 0x5be0cd19;
  const n = data.length, rest = n & 63, full = n - rest;
  for (let off = 0; off < full; off += 64) compress(data, off);
  // Padding (5.1.1): the rest, 0x80, zeros, the length in bits as a u64 BE.
  const tail = rest < 56 ? 64 : 128;
  for (let i = 0; i < rest; i++) TAIL[i] = data[full + i]!;
  TAIL[rest] = 0x80;
  TAIL.fill(0, rest + 1, tail - 8);
  putBE(TAIL, tail - 8, Math.floor(n / 0x20000000));
  putBE(TAIL, tail - 4, n << 3);
  compress(TAIL, 0);
  if (tail === 128) compress(TAIL, 64);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) putBE(out, 4 * i, H[i]!);
  return out;
}

const IDS = new Uint8Array(48);
const IDS_VIEW = new DataView(IDS.buffer);

/**
 * The ID an object with key `kuid` gets (Twizzler's `gen_id`): SHA-256 of
 * nonce (u128) ‖ kuid (u128) ‖ flags (u16) ‖ default protections (u16) ‖ 12
 * zero bytes, its two halves XORed, read little-endian.
 *
 * The value is returned as derived: about one in 2^64 has a zero upper half,
 * which is not a valid ID here — a caller checks {@linkcode isValidId} and,
 * when it fails, derives again with another nonce.
 *
 * @param nonce The object's nonce (u128).
 * @param kuid Its key object's ID.
 * @param flags Its meta-info flags (u16).
 * @param prot Its default protections (u16).
 * @returns The derived ID.
 * @throws {RangeError} A value does not fit its width.
 * @example Derive and check
 * ```ts
 * import { deriveObjectId, isValidId } from "@twz/kernel/abi";
 * const id = deriveObjectId(42n, 7n << 64n, 0, 1);
 * console.log(id === deriveObjectId(42n, 7n << 64n, 0, 1), isValidId(id)); // true true
 * ```
 */
export function deriveObjectId(nonce: bigint, kuid: ObjID, flags: number, prot: number): ObjID {
  checkBig("nonce", nonce, M128, "u128");
  checkBig("kuid", kuid, M128, "u128");
  checkU16("flags", flags);
  checkU16("prot", prot);
  IDS.fill(0);
  putU128(IDS_VIEW, 0, nonce);
  putU128(IDS_VIEW, 16, kuid);
  IDS_VIEW.setUint16(32, flags, true);
  IDS_VIEW.setUint16(34, prot, true);
  const hv = new DataView(sha256(IDS).buffer);
  const lo = hv.getBigUint64(0, true) ^ hv.getBigUint64(16, true);
  const hi = hv.getBigUint64(8, true) ^ hv.getBigUint64(24, true);
  return (hi << 64n) | lo;
}

/** `prot` as `rwxud` letters (`r--u-`). */
export function formatSecProt(prot: number): string {
  return (prot & SecProt.Read ? "r" : "-") + (prot & SecProt.Write ? "w" : "-") +
    (prot & SecProt.Exec ? "x" : "-") + (prot & SecProt.Use ? "u" : "-") +
    (prot & SecProt.Delete ? "d" : "-");
}

/** Parse `rwxud` letters (any order, `-` ignored). Throws `TypeError`. */
export function parseSecProt(text: string): number {
  if (!/^[rwxud-]{1,5}$/.test(text)) {
    throw new TypeError(`"${text}" is not a protection (letters of rwxud, like "r" or "rw")`);
  }
  let p = 0;
  for (const c of text) {
    p |= c === "r"
      ? SecProt.Read
      : c === "w"
      ? SecProt.Write
      : c === "x"
      ? SecProt.Exec
      : c === "u"
      ? SecProt.Use
      : c === "d"
      ? SecProt.Delete
      : 0;
  }
  return p;
}

// ---------------------------------------------------------------------------
// What the kernel reports (the port's security calls, `port.ts`).
// ---------------------------------------------------------------------------

/** What `keyCreate` takes: nothing (the kernel generates a pair) or a pair to import. */
export interface KeySpec {
  /**
   * The signing scheme.
   *
   * @default {"ecdsa-p256"}
   */
  scheme?: KeyScheme | undefined;
  /** Raw public key to import (with `privateKey`, or alone: a key that cannot sign here). */
  publicKey?: Uint8Array | undefined;
  /** PKCS#8 private key to import. */
  privateKey?: Uint8Array | undefined;
}

/** The objects of a key. */
export interface KeyIds {
  /** The key object (public half): objects name it as their `kuid`. */
  kuid: ObjID;
  /**
   * The private half (PKCS#8 at its base), readable only by the creator's
   * context (and the admin); `0n` when only a public key was imported.
   */
  privateId: ObjID;
}

/** A key object, as the kernel reads it. */
export interface KeyInfo extends KeyIds {
  /** The signing scheme. */
  scheme: KeyScheme;
  /** Raw public key (65 bytes P-256, 32 bytes Ed25519). */
  publicKey: Uint8Array;
  /** Bumped by every rotation. */
  generation: number;
}

/** A security context, as the kernel reads it. */
export interface ContextInfo {
  /** The context object. */
  id: ObjID;
  /** The key that speaks for this context (signs its delegations), or `0n`. */
  key: ObjID;
  /** Its grants, by index (indices stay stable until the grant is removed). */
  grants: { index: number; grant: Grant }[];
  /** Per-object masks: what the context may have on `target` at most. */
  masks: { target: ObjID; prot: number }[];
  /** What the context may have on any object at most. */
  globalMask: number;
  /** Bumped by every change. */
  generation: number;
}

/** One reason in an {@linkcode AccessReport}. */
export interface AccessReason {
  /** The context it is about (`0n`: the object's defaults or the admin). */
  context: ObjID;
  /** The grant's index in the context, or -1. */
  index: number;
  /** Protections it contributes (0 when it contributes none). */
  prot: number;
  /** One line: why ("capability 3: grants r----", "capability 4: expired at …"). */
  why: string;
}

/** Effective protections of an object for a set of contexts, and why. */
export interface AccessReport {
  /** The object asked about. */
  id: ObjID;
  /** The object's default protections. */
  defaults: number;
  /** The effective protections ({@linkcode SecProt} bits). */
  prot: number;
  /** Every context's contribution, in order. */
  reasons: AccessReason[];
}

/** A gate call as its callee receives it (`gateReceive`). */
export interface GateCallInfo {
  /** Names the call in `gateReply`. */
  call: number;
  /** The gate object. */
  id: ObjID;
  /** The entry point called. */
  offset: number;
  /** The caller's argument bytes. */
  args: Uint8Array;
  /** The calling thread. */
  callerTid: number;
  /** The calling thread's contexts. */
  callerContexts: ObjID[];
}
