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
  kind: "capability";
  /** r‖s (P-256, 64 bytes) or an Ed25519 signature (64 bytes). */
  signature: Uint8Array;
}

/**
 * A delegation: `accessor` gets at most what `parent` gives `provider`,
 * signed with the key of context `provider` (its `key`).
 */
export interface Delegation extends CapFields {
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
  scheme: KeyScheme;
  /** Raw public key: 65-byte uncompressed point (P-256) or 32 bytes (Ed25519). */
  publicKey: Uint8Array;
  /** PKCS#8 DER private key. */
  privateKey: Uint8Array;
}

function todo(what: string): never {
  throw new Error(`${what}: not written yet`);
}

/**
 * Twizzler's serialization of a capability's fields (78 bytes,
 * little-endian): accessor 0–15, target 16–31, protections 32–33, flags
 * 34–35, expiry 36–51, gate offset 52–59, length 60–67, align 68–75, two
 * zero bytes.
 */
export function serializeCap(_c: CapFields): Uint8Array {
  return todo("serializeCap");
}

/** The scheme a grant's flags select. */
export function schemeOf(flags: number): KeyScheme {
  return (flags & CapFlag.Ed25519) !== 0 ? "ed25519" : "ecdsa-p256";
}

/** Encode a grant (leaf first, then each parent): what a context stores. */
export function encodeGrant(_g: Grant): Uint8Array {
  return todo("encodeGrant");
}

/**
 * Decode {@linkcode encodeGrant}'s bytes. Throws `TwzError(InvalidArgument)`
 * naming what is wrong (length, kind, depth, signature length).
 */
export function decodeGrant(_bytes: Uint8Array): Grant {
  return todo("decodeGrant");
}

/**
 * The bytes a grant's signature covers: for a capability the SHA-256 of
 * {@linkcode serializeCap}; for a delegation the SHA-256 of the
 * serialization ‖ provider (16 bytes LE) ‖ SHA-256 of the encoded parent.
 */
export function signedMessage(_g: Grant): Uint8Array {
  return todo("signedMessage");
}

/** A new key pair (WebCrypto, extractable). */
export function generateKeyPair(_scheme: KeyScheme): Promise<KeyPairBytes> {
  return todo("generateKeyPair");
}

/** Sign a capability's fields with a PKCS#8 private key of `schemeOf(fields.flags)`. */
export function signCapability(_fields: CapFields, _privateKey: Uint8Array): Promise<Capability> {
  return todo("signCapability");
}

/** Sign a delegation with the provider's PKCS#8 private key. */
export function signDelegation(
  _fields: CapFields,
  _provider: ObjID,
  _parent: Grant,
  _privateKey: Uint8Array,
): Promise<Delegation> {
  return todo("signDelegation");
}

/** Import a raw public key for verifying (WebCrypto `importKey`). */
export function importPublicKey(_scheme: KeyScheme, _raw: Uint8Array): Promise<CryptoKey> {
  return todo("importPublicKey");
}

/**
 * Whether `signature` is a valid signature of `message` under `key`
 * (WebCrypto `verify`; P-256 takes r‖s and hashes with SHA-256).
 */
export function verifySignature(
  _scheme: KeyScheme,
  _key: CryptoKey,
  _message: Uint8Array,
  _signature: Uint8Array,
): Promise<boolean> {
  return todo("verifySignature");
}

/** SHA-256, synchronously (for IDs at create; WebCrypto is asynchronous). */
export function sha256(_data: Uint8Array): Uint8Array {
  return todo("sha256");
}

/**
 * The ID an object with key `kuid` gets (Twizzler's `gen_id`): SHA-256 of
 * nonce (u128) ‖ kuid (u128) ‖ flags (u16) ‖ default protections (u16) ‖ 12
 * zero bytes, its two halves XORed, read little-endian.
 */
export function deriveObjectId(
  _nonce: bigint,
  _kuid: ObjID,
  _flags: number,
  _prot: number,
): ObjID {
  return todo("deriveObjectId");
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
  /** @default {"ecdsa-p256"} */
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
  scheme: KeyScheme;
  publicKey: Uint8Array;
  /** Bumped by every rotation. */
  generation: number;
}

/** A security context, as the kernel reads it. */
export interface ContextInfo {
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
  id: ObjID;
  /** The object's default protections. */
  defaults: number;
  /** The effective protections ({@linkcode SecProt} bits). */
  prot: number;
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
