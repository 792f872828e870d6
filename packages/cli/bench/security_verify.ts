/**
 * `twz bench sec-verify`: what the first verification of a capability costs,
 * against WebCrypto's bare `importKey` + `verify` of the same signature (the
 * floor: the cryptography itself). For each scheme (`ecdsa-p256`,
 * `ed25519`), `--ops` capabilities are made beforehand, each signed with its
 * own fresh key, so every verification imports key bytes it has not seen
 * (nothing can be cached). Then, `--rounds` times, the two cases each verify
 * all of them, sample by sample (the order of the two alternating from one
 * sample to the next and between rounds), each verification timed on its own:
 *
 * - `webcrypto`: `crypto.subtle.importKey("raw", …)` + `crypto.subtle.verify`
 *   of the precomputed signed message (the 32-byte SHA-256 of the
 *   serialization).
 * - the verification path (`ns_per_op`): `decodeGrant` of the encoded grant
 *   (160 bytes), `importPublicKey` (for P-256 with the on-curve check),
 *   `grantMessage` (the synchronous SHA-256 of the link's bytes: what
 *   `signedMessage` gives, without re-serializing) and `verifySignature`,
 *   as the kernel does the first time it meets a grant.
 *
 * Each operation is awaited before the next (the kernel verifies one grant
 * at a time per request). Pairing the two cases sample by sample keeps a
 * busy machine's drift out of the ratio. Reports per scheme the median of
 * all single-verification times (`ns_per_op`, the path, and
 * `webcrypto_ns_per_op`), their `ratio` (the issue's target: ≤ 1.1) and the
 * range of the rounds' ratios of medians. Every verification must succeed,
 * or the run fails.
 *
 * @example
 * ```sh
 * deno run -A packages/cli/main.ts bench sec-verify --json
 * ```
 *
 * @module
 */
import {
  CapFlag,
  decodeGrant,
  encodeGrant,
  generateKeyPair,
  grantMessage,
  importPublicKey,
  type KeyScheme,
  schemeOf,
  SecProt,
  signCapability,
  signedMessage,
  verifySignature,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";
import { type BenchOptions, type BenchResult, median } from "./types.ts";
import { refuseImage, round3 } from "./_util.ts";

const TARGET = 1.1;

/** One prepared capability: its key's raw bytes, the encoded grant, what WebCrypto needs. */
interface Sample {
  publicKey: Uint8Array<ArrayBuffer>;
  grant: Uint8Array;
  message: Uint8Array<ArrayBuffer>;
  signature: Uint8Array<ArrayBuffer>;
}

async function prepare(scheme: KeyScheme, count: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    const pair = await generateKeyPair(scheme);
    const cap = await signCapability({
      target: (0x7a00n + BigInt(i)) << 64n | BigInt(i),
      accessor: 0xc0n << 64n | BigInt(i),
      prot: SecProt.Read,
      flags: CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0),
      expiry: 0n,
      gate: WHOLE_OBJECT,
    }, pair.privateKey);
    samples.push({
      publicKey: pair.publicKey as Uint8Array<ArrayBuffer>,
      grant: encodeGrant(cap),
      message: signedMessage(cap) as Uint8Array<ArrayBuffer>,
      signature: cap.signature as Uint8Array<ArrayBuffer>,
    });
  }
  return samples;
}

function fail(scheme: KeyScheme, what: string): never {
  throw new Error(`bench sec-verify: a ${scheme} capability did not verify (${what})`);
}

/** Bare WebCrypto on one sample: milliseconds. */
async function bare(scheme: KeyScheme, s: Sample): Promise<number> {
  const t0 = performance.now();
  const key = await crypto.subtle.importKey("raw", s.publicKey, KEY_ALG[scheme], false, ["verify"]);
  const ok = await crypto.subtle.verify(SIG_ALG[scheme], key, s.signature, s.message);
  const t1 = performance.now();
  if (!ok) fail(scheme, "webcrypto");
  return t1 - t0;
}

/** The first-verification path on one sample: milliseconds. */
async function path(scheme: KeyScheme, s: Sample): Promise<number> {
  const t0 = performance.now();
  const g = decodeGrant(s.grant);
  const sch = schemeOf(g.flags);
  const key = await importPublicKey(sch, s.publicKey);
  const ok = await verifySignature(sch, key, grantMessage(s.grant), g.signature);
  const t1 = performance.now();
  if (!ok) fail(scheme, "path");
  return t1 - t0;
}

const KEY_ALG = {
  "ecdsa-p256": { name: "ECDSA", namedCurve: "P-256" },
  "ed25519": { name: "Ed25519" },
} as const;
const SIG_ALG = {
  "ecdsa-p256": { name: "ECDSA", hash: "SHA-256" },
  "ed25519": { name: "Ed25519" },
} as const;

/**
 * Run the benchmark.
 *
 * @param opts Ops (capabilities, each with its own key, per round; default
 *   200) and rounds (default 9). No image: `--image` is refused; `--hal` is
 *   ignored (no HAL is involved).
 * @returns One result per scheme: `ns_per_op` (the verification path),
 *   `webcrypto_ns_per_op`, `ratio`, `target`, and the range of the rounds'
 *   ratios.
 */
export async function run(opts: BenchOptions): Promise<BenchResult[]> {
  refuseImage(opts, "sec-verify", "it makes no image (no HAL is involved)");
  const ops = opts.ops ?? 200;
  const rounds = opts.rounds ?? 9;
  const results: BenchResult[] = [];
  for (const scheme of ["ecdsa-p256", "ed25519"] as const) {
    const samples = await prepare(scheme, ops);
    // Warm-up: both cases on every sample, untimed.
    for (const x of samples) await bare(scheme, x), await path(scheme, x);
    const ours: number[] = [], floor: number[] = [], ratios: number[] = [];
    for (let k = 0; k < rounds; k++) {
      const a: number[] = [], b: number[] = [];
      for (let i = 0; i < samples.length; i++) {
        const x = samples[i]!;
        if ((i + k) % 2 === 0) {
          b.push(await bare(scheme, x));
          a.push(await path(scheme, x));
        } else {
          a.push(await path(scheme, x));
          b.push(await bare(scheme, x));
        }
      }
      ours.push(...a);
      floor.push(...b);
      ratios.push(median(a) / median(b));
    }
    const ns = median(ours) * 1e6, webcrypto = median(floor) * 1e6;
    results.push({
      bench: "sec-verify",
      case: `${scheme} first verification`,
      ops: ops * rounds,
      ns_per_op: Math.round(ns),
      webcrypto_ns_per_op: Math.round(webcrypto),
      ratio: round3(ns / webcrypto),
      ratio_round_min: round3(Math.min(...ratios)),
      ratio_round_max: round3(Math.max(...ratios)),
      target: TARGET,
    });
  }
  return results;
}
