/**
 * Interop of the capability format with an independent implementation:
 * openssl verifies what we sign and we verify what openssl signs, over
 * Twizzler's 78-byte serialization (docs/SECURITY.md). The vectors are in
 * packages/kernel/testdata/security/ (README.txt there names the commands).
 * Without `openssl` on PATH the tests are ignored, except under CI=true.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Capability,
  type CapFields,
  CapFlag,
  decodeGrant,
  ecdsaSignatureFromDer,
  ecdsaSignatureToDer,
  encodeGrant,
  generateKeyPair,
  importPublicKey,
  type KeyScheme,
  parseId,
  serializeCap,
  signCapability,
  signedMessage,
  verifySignature,
} from "./mod.ts";

const DATA = new URL("../testdata/security/", import.meta.url);

async function opensslVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "piped" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

const version = await opensslVersion();
const ignore = version === undefined && Deno.env.get("CI") !== "true";
const skipped = ignore ? " (ignored: openssl not found)" : "";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(
    atob(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

const algorithm = (scheme: KeyScheme) =>
  scheme === "ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };

/** The raw public key (our form) of an SPKI PEM file (openssl's form). */
async function rawPublicKey(scheme: KeyScheme, file: string): Promise<Uint8Array> {
  const spki = pemBody(await Deno.readTextFile(new URL(file, DATA)));
  const key = await crypto.subtle.importKey("spki", spki, algorithm(scheme), true, ["verify"]);
  return new Uint8Array(await crypto.subtle.exportKey("raw", key));
}

async function openssl(args: string[]): Promise<{ ok: boolean; text: string }> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twz_sec_openssl_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** openssl's verdict on `signature` (ours: r‖s or Ed25519) over the 32-byte `message`. */
async function opensslVerifies(
  scheme: KeyScheme,
  publicPem: string,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  let verdict = false;
  await inTemp(async (dir) => {
    await Deno.writeFile(`${dir}/msg32.bin`, message);
    const r = scheme === "ecdsa-p256"
      ? (await Deno.writeFile(`${dir}/sig.der`, ecdsaSignatureToDer(signature)),
        await openssl([
          "dgst",
          "-sha256",
          "-verify",
          publicPem,
          "-signature",
          `${dir}/sig.der`,
          `${dir}/msg32.bin`,
        ]))
      : (await Deno.writeFile(`${dir}/sig.bin`, signature),
        await openssl([
          "pkeyutl",
          "-verify",
          "-pubin",
          "-inkey",
          publicPem,
          "-rawin",
          "-in",
          `${dir}/msg32.bin`,
          "-sigfile",
          `${dir}/sig.bin`,
        ]));
    verdict = r.ok && /Verified OK|Signature Verified Successfully/.test(r.text);
  });
  return verdict;
}

/** openssl's signature (converted to ours) over the 32-byte `message`. */
async function opensslSigns(
  scheme: KeyScheme,
  privatePem: string,
  message: Uint8Array,
): Promise<Uint8Array> {
  let sig: Uint8Array = new Uint8Array();
  await inTemp(async (dir) => {
    await Deno.writeFile(`${dir}/msg32.bin`, message);
    const r = scheme === "ecdsa-p256"
      ? await openssl([
        "dgst",
        "-sha256",
        "-sign",
        privatePem,
        "-out",
        `${dir}/sig`,
        `${dir}/msg32.bin`,
      ])
      : await openssl([
        "pkeyutl",
        "-sign",
        "-inkey",
        privatePem,
        "-rawin",
        "-in",
        `${dir}/msg32.bin`,
        "-out",
        `${dir}/sig`,
      ]);
    assert.ok(r.ok, `openssl failed: ${r.text}`);
    const out = await Deno.readFile(`${dir}/sig`);
    sig = scheme === "ecdsa-p256" ? ecdsaSignatureFromDer(out) : out;
  });
  return sig;
}

interface Vector {
  scheme: KeyScheme;
  fields: {
    target: string;
    accessor: string;
    prot: number;
    flags: number;
    expiry: string;
    gate: { offset: string; length: string; align: string };
  };
  serialization: string;
  message: string;
  signature: string;
}

function fieldsOf(v: Vector): CapFields {
  return {
    target: parseId(v.fields.target),
    accessor: BigInt("0x" + v.fields.accessor),
    prot: v.fields.prot,
    flags: v.fields.flags,
    expiry: BigInt(v.fields.expiry),
    gate: {
      offset: BigInt(v.fields.gate.offset),
      length: BigInt(v.fields.gate.length),
      align: BigInt(v.fields.gate.align),
    },
  };
}

const SCHEMES = [
  { scheme: "ecdsa-p256", file: "p256" },
  { scheme: "ed25519", file: "ed25519" },
] as const;

for (const { scheme, file } of SCHEMES) {
  const publicPem = new URL(`${file}_public.pem`, DATA).pathname;
  const privatePem = new URL(`${file}_private.pem`, DATA).pathname;

  Deno.test({
    name:
      `the checked-in ${scheme} vector re-serializes identically and openssl verifies it${skipped}`,
    ignore,
    async fn() {
      const v = JSON.parse(
        await Deno.readTextFile(new URL(`${file}_vector.json`, DATA)),
      ) as Vector;
      assert.equal(v.scheme, scheme);
      const fields = fieldsOf(v);
      assert.equal(hex(serializeCap(fields)), v.serialization);
      const cap: Capability = { kind: "capability", ...fields, signature: unhex(v.signature) };
      assert.equal(hex(signedMessage(cap)), v.message);
      const key = await importPublicKey(scheme, await rawPublicKey(scheme, `${file}_public.pem`));
      assert.ok(await verifySignature(scheme, key, signedMessage(cap), cap.signature));
      assert.ok(await opensslVerifies(scheme, publicPem, unhex(v.message), cap.signature));
      // openssl refuses it when one bit of the signed message changes.
      const wrong = unhex(v.message);
      wrong[0] = wrong[0]! ^ 1;
      assert.equal(await opensslVerifies(scheme, publicPem, wrong, cap.signature), false);
    },
  });

  Deno.test({
    name: `a ${scheme} capability openssl signed verifies here${skipped}`,
    ignore,
    async fn() {
      const fields: CapFields = {
        target: BigInt("0x" + hex(crypto.getRandomValues(new Uint8Array(16)))) | 1n << 127n,
        accessor: BigInt("0x" + hex(crypto.getRandomValues(new Uint8Array(16)))) | 1n << 127n,
        prot: 1 | 4,
        flags: CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0),
        expiry: BigInt(Date.now()) * 1_000_000n + 3_600_000_000_000n,
        gate: { offset: 64n, length: 4096n, align: 64n },
      };
      const unsigned: Capability = { kind: "capability", ...fields, signature: new Uint8Array(64) };
      const signature = await opensslSigns(scheme, privatePem, signedMessage(unsigned));
      assert.equal(signature.length, 64);
      const cap = decodeGrant(encodeGrant({ ...unsigned, signature }));
      const key = await importPublicKey(scheme, await rawPublicKey(scheme, `${file}_public.pem`));
      assert.ok(await verifySignature(scheme, key, signedMessage(cap), cap.signature));
      // ... and not once a field changes.
      const narrower = { ...cap, prot: 1 };
      assert.equal(
        await verifySignature(scheme, key, signedMessage(narrower), cap.signature),
        false,
      );
    },
  });

  Deno.test({
    name: `a ${scheme} capability signed with a fresh key here verifies in openssl${skipped}`,
    ignore,
    async fn() {
      const pair = await generateKeyPair(scheme);
      const cap = await signCapability({
        target: 0x5eedn << 100n,
        accessor: 0xacce55n << 100n,
        prot: 3,
        flags: CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0),
        expiry: 0n,
        gate: { offset: 0n, length: (1n << 64n) - 1n, align: 1n },
      }, pair.privateKey);
      const key = await crypto.subtle.importKey(
        "raw",
        pair.publicKey as Uint8Array<ArrayBuffer>,
        algorithm(scheme),
        true,
        ["verify"],
      );
      const spki = new Uint8Array(await crypto.subtle.exportKey("spki", key));
      await inTemp(async (dir) => {
        await Deno.writeTextFile(`${dir}/pub.pem`, pem("PUBLIC KEY", spki));
        assert.ok(
          await opensslVerifies(scheme, `${dir}/pub.pem`, signedMessage(cap), cap.signature),
        );
        // The checked-in key is another key: openssl refuses.
        assert.equal(
          await opensslVerifies(scheme, publicPem, signedMessage(cap), cap.signature),
          false,
        );
      });
    },
  });
}
