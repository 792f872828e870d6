import assert from "node:assert/strict";
import {
  CAP_SERIALIZED_LEN,
  type Capability,
  type CapFields,
  CapFlag,
  decodeGrant,
  type Delegation,
  deriveObjectId,
  ecdsaSignatureFromDer,
  ecdsaSignatureToDer,
  encodeGrant,
  ErrorCode,
  formatSecProt,
  generateKeyPair,
  type Grant,
  GRANT_LINK_BYTES,
  grantMessage,
  importPublicKey,
  type KeyPairBytes,
  type KeyScheme,
  MAX_GRANT_DEPTH,
  parseSecProt,
  schemeOf,
  SecProt,
  serializeCap,
  sha256,
  signCapability,
  signDelegation,
  signedMessage,
  TwzError,
  verifySignature,
  WHOLE_OBJECT,
} from "./mod.ts";

/** Little-endian bytes of `v` (`n` bytes), written independently of security.ts. */
function le(v: bigint, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return out;
}

async function digest(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

const FIELDS: CapFields = {
  accessor: 0x0f0e0d0c0b0a09080706050403020100n,
  target: 0x1f1e1d1c1b1a19181716151413121110n,
  prot: 0x2120,
  flags: 0x2322,
  expiry: 0x333231302f2e2d2c2b2a292827262524n,
  gate: { offset: 0x3b3a393837363534n, length: 0x434241403f3e3d3cn, align: 0x4b4a494847464544n },
};

function flagsOf(scheme: KeyScheme, extra = 0): number {
  return CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0) | extra;
}

function fields(scheme: KeyScheme, over: Partial<CapFields> = {}): CapFields {
  return {
    target: 0xaaaa_0000_0000_0001_0000_0000_0000_0001n,
    accessor: 0xbbbb_0000_0000_0001_0000_0000_0000_0002n,
    prot: SecProt.Read | SecProt.Write,
    flags: flagsOf(scheme, CapFlag.Delegate),
    expiry: 0n,
    gate: WHOLE_OBJECT,
    ...over,
  };
}

function malformed(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeGrant(bytes), (e: unknown) => {
    assert.ok(e instanceof TwzError, String(e));
    assert.equal(e.code, ErrorCode.InvalidArgument);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "one line");
    return true;
  });
}

function fakeCap(over: Partial<Capability> = {}): Capability {
  return { kind: "capability", ...FIELDS, signature: new Uint8Array(64).fill(0xc5), ...over };
}

function fakeDelegation(parent: Grant, provider = 0x77n << 64n): Delegation {
  return {
    kind: "delegation",
    ...FIELDS,
    prot: 1,
    provider,
    parent,
    signature: new Uint8Array(64).fill(0xd7),
  };
}

Deno.test("serializeCap() writes every field at Twizzler's offsets, little-endian", () => {
  // Every field's bytes are distinct (0x00..0x4b), so a field at a wrong
  // offset or in the wrong order shows as a wrong byte.
  const bytes = serializeCap(FIELDS);
  assert.equal(bytes.length, CAP_SERIALIZED_LEN);
  assert.equal(CAP_SERIALIZED_LEN, 78);
  const expected = [
    ...le(FIELDS.accessor, 16), // 0..16
    ...le(FIELDS.target, 16), // 16..32
    ...le(BigInt(FIELDS.prot), 2), // 32..34
    ...le(BigInt(FIELDS.flags), 2), // 34..36
    ...le(FIELDS.expiry, 16), // 36..52
    ...le(FIELDS.gate.offset, 8), // 52..60
    ...le(FIELDS.gate.length, 8), // 60..68
    ...le(FIELDS.gate.align, 8), // 68..76
    0,
    0,
  ];
  for (let i = 0; i < 76; i++) assert.equal(bytes[i], i, `byte ${i}`);
  assert.deepEqual([...bytes], expected);
  // Extreme values stay in their fields.
  const max = serializeCap({
    accessor: (1n << 128n) - 1n,
    target: 0n,
    prot: 0xffff,
    flags: 0,
    expiry: (1n << 128n) - 1n,
    gate: { offset: 0n, length: (1n << 64n) - 1n, align: 0n },
  });
  assert.deepEqual([...max], [
    ...Array(16).fill(0xff),
    ...Array(16).fill(0),
    0xff,
    0xff,
    0,
    0,
    ...Array(16).fill(0xff),
    ...Array(8).fill(0),
    ...Array(8).fill(0xff),
    ...Array(8).fill(0),
    0,
    0,
  ]);
});

Deno.test("serializeCap() refuses values that do not fit their fields", () => {
  const bad: [string, Partial<CapFields>][] = [
    ["accessor", { accessor: 1n << 128n }],
    ["target", { target: -1n }],
    ["prot", { prot: 0x10000 }],
    ["flags", { flags: 1.5 }],
    ["expiry", { expiry: 1n << 128n }],
    ["gate.offset", { gate: { ...WHOLE_OBJECT, offset: 1n << 64n } }],
    ["gate.length", { gate: { ...WHOLE_OBJECT, length: -1n } }],
    ["gate.align", { gate: { ...WHOLE_OBJECT, align: 1n << 64n } }],
  ];
  for (const [name, over] of bad) {
    assert.throws(() => serializeCap({ ...FIELDS, ...over }), RangeError, name);
    assert.throws(() => serializeCap({ ...FIELDS, ...over }), new RegExp(`"${name}" takes`));
  }
  assert.throws(() => serializeCap({ ...FIELDS, expiry: 5 as unknown as bigint }), RangeError);
});

Deno.test("encodeGrant() lays out links leaf first; decodeGrant() gives the same grant back", () => {
  const cap = fakeCap();
  const capBytes = encodeGrant(cap);
  assert.equal(capBytes.length, GRANT_LINK_BYTES);
  assert.deepEqual(capBytes.subarray(0, 78), serializeCap(cap));
  assert.equal(capBytes[78], 1);
  assert.equal(capBytes[79], 64);
  assert.deepEqual([...capBytes.subarray(80, 144)], Array(64).fill(0xc5));
  assert.deepEqual([...capBytes.subarray(144, 160)], Array(16).fill(0));
  assert.deepEqual(decodeGrant(capBytes), cap);

  let g: Grant = cap;
  for (let depth = 2; depth <= MAX_GRANT_DEPTH; depth++) {
    g = fakeDelegation(g, BigInt(depth) << 64n | 0x0102n);
    const bytes = encodeGrant(g);
    assert.equal(bytes.length, depth * GRANT_LINK_BYTES);
    // The leaf: a delegation with its provider.
    assert.equal(bytes[78], 2);
    assert.deepEqual([...bytes.subarray(144, 160)], le(BigInt(depth) << 64n | 0x0102n, 16));
    // The last link: the capability.
    assert.equal(bytes[(depth - 1) * GRANT_LINK_BYTES + 78], 1);
    assert.deepEqual(decodeGrant(bytes), g);
    assert.deepEqual(encodeGrant(decodeGrant(bytes)), bytes);
  }
  // The decoded grant does not alias the bytes.
  const bytes = encodeGrant(cap);
  const back = decodeGrant(bytes);
  bytes.fill(0);
  assert.deepEqual(back, cap);
  // A view into a larger buffer decodes the same.
  const big = new Uint8Array(GRANT_LINK_BYTES + 7);
  big.set(encodeGrant(cap), 7);
  assert.deepEqual(decodeGrant(big.subarray(7)), cap);
});

Deno.test("decodeGrant() refuses every malformed encoding with one line", () => {
  const cap = encodeGrant(fakeCap());
  const two = encodeGrant(fakeDelegation(fakeCap()));
  malformed(new Uint8Array(0), /0 bytes is not a whole number of 160-byte links/);
  malformed(cap.subarray(0, 159), /159 bytes/);
  malformed(new Uint8Array(161), /161 bytes/);
  const five = new Uint8Array(5 * GRANT_LINK_BYTES);
  for (let i = 0; i < 4; i++) five.set(two.subarray(0, 160), i * 160);
  five.set(cap, 4 * 160);
  malformed(five, /5 links \(at most 4/);
  for (const kind of [0, 3, 255]) {
    const b = cap.slice();
    b[78] = kind;
    malformed(b, new RegExp(`link 1 of 1 has kind ${kind}`));
  }
  // A delegation as the last link.
  const lastDel = two.slice();
  lastDel[160 + 78] = 2;
  malformed(lastDel, /link 2 of 2 is a delegation: the last link must be a capability/);
  // A capability before the last link.
  const capFirst = two.slice();
  capFirst[78] = 1;
  malformed(capFirst, /link 1 of 2 is a capability: only the last link may be/);
  for (const len of [0, 63, 65, 72]) {
    const b = two.slice();
    b[160 + 79] = len;
    malformed(b, new RegExp(`link 2 of 2 has signature length ${len} \\(must be 64\\)`));
  }
  for (const at of [76, 77]) {
    const b = cap.slice();
    b[at] = 1;
    malformed(b, /reserved bytes 76-77/);
  }
  const provider = cap.slice();
  provider[150] = 9;
  malformed(provider, /capability with a non-zero provider/);
  // The unmodified encodings decode.
  decodeGrant(cap);
  decodeGrant(two);
});

Deno.test("encodeGrant() refuses chains that are too deep and signatures that are not 64 bytes", () => {
  let g: Grant = fakeCap();
  for (let i = 1; i < MAX_GRANT_DEPTH; i++) g = fakeDelegation(g);
  encodeGrant(g);
  assert.throws(() => encodeGrant(fakeDelegation(g)), /more than 4 links/);
  assert.throws(
    () => encodeGrant(fakeCap({ signature: new Uint8Array(63) })),
    (e: unknown) => e instanceof TwzError && /63-byte signature/.test(e.message),
  );
  assert.throws(
    () => encodeGrant({ ...fakeCap(), kind: "other" } as unknown as Grant),
    /kind "other"/,
  );
});

Deno.test("signedMessage() is SHA-256 of the serialization, or of serialization ‖ provider ‖ parent hash", async () => {
  const cap = fakeCap();
  assert.deepEqual(signedMessage(cap), await digest(serializeCap(cap)));
  const del = fakeDelegation(cap, 0x1234n << 64n | 0x56n);
  const parentHash = await digest(encodeGrant(cap));
  const message = new Uint8Array([
    ...serializeCap(del),
    ...le(del.provider, 16),
    ...parentHash,
  ]);
  assert.equal(message.length, 126);
  assert.deepEqual(signedMessage(del), await digest(message));
  // The signature is not part of the message; every field is.
  assert.deepEqual(signedMessage(fakeCap({ signature: new Uint8Array(64) })), signedMessage(cap));
  assert.notDeepEqual(signedMessage(fakeCap({ prot: 1 })), signedMessage(cap));
  // The parent's signature is (a different parent signature changes a delegation's message).
  const other = fakeDelegation(fakeCap({ signature: new Uint8Array(64) }), del.provider);
  assert.notDeepEqual(signedMessage(other), signedMessage(del));
});

Deno.test("grantMessage() gives signedMessage() of every link straight from the bytes", () => {
  const cap = fakeCap();
  const d1 = fakeDelegation(cap, 0x51n << 64n | 7n);
  const d2 = fakeDelegation(d1, 0x52n << 64n | 9n);
  const bytes = encodeGrant(d2);
  const links: Grant[] = [d2, d1, cap];
  links.forEach((g, i) => assert.deepEqual(grantMessage(bytes, i), signedMessage(g), `link ${i}`));
  assert.deepEqual(grantMessage(encodeGrant(cap)), signedMessage(cap));
  // A view into a larger buffer.
  const big = new Uint8Array(bytes.length + 3);
  big.set(bytes, 3);
  assert.deepEqual(grantMessage(big.subarray(3), 1), signedMessage(d1));
  for (const link of [-1, 3, 1.5]) {
    assert.throws(() => grantMessage(bytes, link), RangeError);
  }
});

Deno.test("sha256() agrees with crypto.subtle.digest", async () => {
  const abc = Array.from(
    sha256(new TextEncoder().encode("abc")),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(abc, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const source = crypto.getRandomValues(new Uint8Array(65536));
  for (let n = 0; n <= 300; n++) {
    const data = source.subarray(n, n + n); // also unaligned views
    assert.deepEqual(sha256(data), await digest(data.slice()), `length ${n}`);
  }
  for (const n of [3 * 1024 * 1024 + 17, 2 * 1024 * 1024]) {
    const data = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) data.set(source.subarray(0, Math.min(65536, n - i)), i);
    data[n - 1] = data[n - 1]! ^ 0x5a;
    assert.deepEqual(sha256(data), await digest(data), `length ${n}`);
  }
});

Deno.test("deriveObjectId() matches gen_id computed over the 48-byte Ids struct", async () => {
  const cases: [bigint, bigint, number, number][] = [
    [0n, 0n, 0, 0],
    [42n, 0x1234n << 64n | 0x5678n, 0, SecProt.Read],
    [(1n << 128n) - 1n, (1n << 128n) - 2n, 0xffff, 0xfffe],
    [0x0123456789abcdef0011223344556677n, 0xfedcba98765432100123456789abcdefn, 3, 31],
  ];
  for (const [nonce, kuid, flags, prot] of cases) {
    const ids = new Uint8Array([
      ...le(nonce, 16),
      ...le(kuid, 16),
      ...le(BigInt(flags), 2),
      ...le(BigInt(prot), 2),
      ...Array(12).fill(0), // _resv2 u32, _resv3 u64
    ]);
    assert.equal(ids.length, 48);
    const h = await digest(ids);
    let id = 0n;
    for (let i = 15; i >= 0; i--) id = id << 8n | BigInt(h[i]! ^ h[i + 16]!);
    assert.equal(deriveObjectId(nonce, kuid, flags, prot), id);
  }
  const base = deriveObjectId(1n, 2n << 64n, 0, 1);
  assert.notEqual(deriveObjectId(2n, 2n << 64n, 0, 1), base);
  assert.notEqual(deriveObjectId(1n, 3n << 64n, 0, 1), base);
  assert.notEqual(deriveObjectId(1n, 2n << 64n, 1, 1), base);
  assert.notEqual(deriveObjectId(1n, 2n << 64n, 0, 3), base);
  assert.throws(() => deriveObjectId(-1n, 0n, 0, 0), RangeError);
  assert.throws(() => deriveObjectId(0n, 1n << 128n, 0, 0), RangeError);
  assert.throws(() => deriveObjectId(0n, 0n, 0x10000, 0), RangeError);
});

const pairs = new Map<KeyScheme, KeyPairBytes>();
async function pair(scheme: KeyScheme, name = "a"): Promise<KeyPairBytes> {
  const k = `${scheme}/${name}` as KeyScheme;
  if (!pairs.has(k)) pairs.set(k, await generateKeyPair(scheme));
  return pairs.get(k)!;
}

async function verifies(g: Grant, publicKey: Uint8Array): Promise<boolean> {
  const scheme = schemeOf(g.flags);
  return verifySignature(
    scheme,
    await importPublicKey(scheme, publicKey),
    signedMessage(g),
    g.signature,
  );
}

for (const scheme of ["ecdsa-p256", "ed25519"] as const) {
  Deno.test(`generateKeyPair("${scheme}") gives a raw public key and a PKCS#8 private key`, async () => {
    const p = await pair(scheme);
    assert.equal(p.scheme, scheme);
    assert.equal(p.publicKey.length, scheme === "ed25519" ? 32 : 65);
    if (scheme === "ecdsa-p256") assert.equal(p.publicKey[0], 4); // uncompressed point
    assert.equal(p.privateKey[0], 0x30); // DER SEQUENCE
    assert.notDeepEqual((await pair(scheme, "b")).publicKey, p.publicKey);
  });

  Deno.test(`signCapability() (${scheme}) verifies under the target's key and no other`, async () => {
    const a = await pair(scheme), b = await pair(scheme, "b");
    const cap = await signCapability(fields(scheme), a.privateKey);
    assert.equal(cap.kind, "capability");
    assert.equal(cap.signature.length, 64);
    assert.equal(schemeOf(cap.flags), scheme);
    assert.ok(await verifies(cap, a.publicKey));
    assert.ok(await verifies(decodeGrant(encodeGrant(cap)), a.publicKey));
    assert.equal(await verifies(cap, b.publicKey), false);
    // A signature of the wrong length is simply invalid.
    const key = await importPublicKey(scheme, a.publicKey);
    for (const n of [0, 63, 65]) {
      assert.equal(
        await verifySignature(scheme, key, signedMessage(cap), new Uint8Array(n)),
        false,
      );
    }
  });

  Deno.test(`a tampered byte in any field of a ${scheme} grant fails verification`, async () => {
    const a = await pair(scheme);
    const cap = await signCapability(
      fields(scheme, { expiry: 123n, gate: { offset: 8n, length: 64n, align: 8n } }),
      a.privateKey,
    );
    const key = await importPublicKey(scheme, a.publicKey);
    const bytes = encodeGrant(cap);
    const check = async (b: Uint8Array) => {
      const g = decodeGrant(b);
      // A flipped Ed25519 flag selects the other scheme: the key no longer fits
      // (WebCrypto throws), which grants nothing either.
      return await verifySignature(schemeOf(g.flags), key, signedMessage(g), g.signature)
        .catch(() => false);
    };
    assert.ok(await check(bytes));
    // Every byte of the serialization (0..76) and of the signature (80..144),
    // one bit each; 76..80 are refused by decodeGrant itself.
    for (let i = 0; i < 144; i++) {
      if (i >= 76 && i < 80) continue;
      for (const bit of i === 35 ? [0, 3] : [i % 8]) { // 35 bit 0: the Ed25519 flag
        const b = bytes.slice();
        b[i] = b[i]! ^ (1 << bit);
        assert.equal(await check(b), false, `byte ${i} bit ${bit}`);
      }
    }
  });

  Deno.test(`signDelegation() (${scheme}) binds provider and parent`, async () => {
    const target = await pair(scheme), provider = await pair(scheme, "b");
    const cap = await signCapability(fields(scheme), target.privateKey);
    const providerId = cap.accessor;
    const del = await signDelegation(
      fields(scheme, { accessor: 0xcccc_0000_0000_0001_0000_0000_0000_0003n, prot: 1 }),
      providerId,
      cap,
      provider.privateKey,
    );
    assert.equal(del.kind, "delegation");
    assert.equal(del.provider, providerId);
    assert.ok(await verifies(del, provider.publicKey));
    assert.equal(await verifies(del, target.publicKey), false);
    const bytes = encodeGrant(del);
    const back = decodeGrant(bytes) as Delegation;
    assert.ok(await verifies(back, provider.publicKey));
    assert.ok(await verifies(back.parent, target.publicKey));
    // Tampering with the provider or with any byte of the parent link breaks the delegation.
    for (const i of [144, 159, 160, 160 + 33, 160 + 100]) {
      const b = bytes.slice();
      b[i] = b[i]! ^ 0x10;
      const g = decodeGrant(b);
      assert.equal(await verifies(g, provider.publicKey), false, `byte ${i}`);
    }
    // A delegation of a delegation.
    const third = await pair(scheme, "c");
    const del2 = await signDelegation(
      fields(scheme, { accessor: 0xdddd_0000_0000_0001_0000_0000_0000_0004n, prot: 1 }),
      del.accessor,
      del,
      third.privateKey,
    );
    assert.equal(encodeGrant(del2).length, 3 * GRANT_LINK_BYTES);
    assert.ok(await verifies(decodeGrant(encodeGrant(del2)), third.publicKey));
  });
}

Deno.test("signCapability() refuses flags without Sha256 and keys of the wrong scheme", async () => {
  const p = await pair("ecdsa-p256"), e = await pair("ed25519");
  const refused = async (f: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(f, (err: unknown) => {
      assert.ok(err instanceof TwzError);
      assert.equal(err.code, ErrorCode.InvalidArgument);
      assert.match(err.message, pattern);
      return true;
    });
  };
  await refused(signCapability(fields("ecdsa-p256", { flags: 0 }), p.privateKey), /Sha256/);
  await refused(
    signCapability(fields("ecdsa-p256", { flags: CapFlag.Sha256 | CapFlag.Blake3 }), p.privateKey),
    /Blake3/,
  );
  // Ed25519 flag with a P-256 key, and the other way round.
  await refused(signCapability(fields("ed25519"), p.privateKey), /PKCS#8 ed25519/);
  await refused(signCapability(fields("ecdsa-p256"), e.privateKey), /PKCS#8 ecdsa-p256/);
  const cap = await signCapability(fields("ecdsa-p256"), p.privateKey);
  let deep: Grant = cap;
  for (let i = 1; i < MAX_GRANT_DEPTH; i++) {
    deep = await signDelegation(fields("ecdsa-p256"), 1n << 64n, deep, p.privateKey);
  }
  await refused(signDelegation(fields("ecdsa-p256"), 1n << 64n, deep, p.privateKey), /4 links/);
});

Deno.test("importPublicKey() refuses bytes that are not a key of the scheme", async () => {
  for (
    const [scheme, raw] of [
      ["ecdsa-p256", new Uint8Array(32)],
      ["ecdsa-p256", new Uint8Array(65).fill(4)],
      [
        "ecdsa-p256",
        new Uint8Array([4, ...(await pair("ecdsa-p256")).publicKey.subarray(1, 64), 0]),
      ],
      ["ecdsa-p256", new Uint8Array([2, ...(await pair("ecdsa-p256")).publicKey.subarray(1)])],
      ["ed25519", new Uint8Array(65)],
    ] as const
  ) {
    await assert.rejects(
      importPublicKey(scheme, raw),
      (e: unknown) =>
        e instanceof TwzError && e.code === ErrorCode.InvalidArgument &&
        e.message.includes(`${raw.length}-byte ${scheme}`),
    );
  }
  await assert.rejects(importPublicKey("rsa" as KeyScheme, new Uint8Array(32)), TypeError);
});

Deno.test("ecdsaSignatureToDer()/FromDer() convert r‖s and DER both ways", async () => {
  // Known encoding: r = 1, s = 0x80 (needs a 0x00 pad).
  const rs = new Uint8Array(64);
  rs[31] = 1;
  rs[63] = 0x80;
  assert.deepEqual([...ecdsaSignatureToDer(rs)], [0x30, 7, 2, 1, 1, 2, 2, 0, 0x80]);
  assert.deepEqual(ecdsaSignatureFromDer(ecdsaSignatureToDer(rs)), rs);
  // High bit set in r: 33-byte INTEGER; longest DER is 72 bytes.
  const high = new Uint8Array(64).fill(0xff);
  assert.equal(ecdsaSignatureToDer(high).length, 72);
  assert.deepEqual(ecdsaSignatureFromDer(ecdsaSignatureToDer(high)), high);
  for (let i = 0; i < 200; i++) {
    const sig = crypto.getRandomValues(new Uint8Array(64));
    if (i % 4 === 0) sig.fill(0, 0, i % 32); // leading zeros
    assert.deepEqual(ecdsaSignatureFromDer(ecdsaSignatureToDer(sig)), sig);
  }
  // A real signature survives the trip.
  const p = await pair("ecdsa-p256");
  const cap = await signCapability(fields("ecdsa-p256"), p.privateKey);
  const back = ecdsaSignatureFromDer(ecdsaSignatureToDer(cap.signature));
  assert.ok(await verifies({ ...cap, signature: back }, p.publicKey));
  // Refusals.
  assert.throws(() => ecdsaSignatureToDer(new Uint8Array(63)), TypeError);
  const good = ecdsaSignatureToDer(rs);
  const bad: [number[], RegExp][] = [
    [[0x31, ...good.subarray(1)], /SEQUENCE/],
    [[...good.subarray(0, good.length - 1)], /length byte/],
    [[0x30, 7, 3, 1, 1, 2, 2, 0, 0x80], /INTEGER is missing/],
    [[0x30, 7, 2, 1, 0x81, 2, 2, 0, 0x80], /negative/],
    [[0x30, 8, 2, 2, 0, 1, 2, 2, 0, 0x80], /not minimal/],
    [[0x30, 7, 2, 9, 1, 2, 2, 0, 0x80], /truncated/],
    [[0x30, 8, ...good.subarray(2), 0], /bytes follow/],
  ];
  for (const [bytes, pattern] of bad) {
    assert.throws(() => ecdsaSignatureFromDer(new Uint8Array(bytes)), pattern);
  }
  const long = new Uint8Array([0x30, 39, 2, 34, 1, ...Array(33).fill(1), 2, 1, 1]);
  assert.throws(() => ecdsaSignatureFromDer(long), /longer than 32/);
});

Deno.test("formatSecProt()/parseSecProt() use rwxud letters", () => {
  assert.equal(formatSecProt(0), "-----");
  assert.equal(formatSecProt(SecProt.All), "rwxud");
  assert.equal(formatSecProt(SecProt.Read | SecProt.Use), "r--u-");
  assert.equal(parseSecProt("r--u-"), SecProt.Read | SecProt.Use);
  assert.equal(parseSecProt("dw"), SecProt.Write | SecProt.Delete);
  assert.equal(parseSecProt("-"), 0);
  for (let p = 0; p <= SecProt.All; p++) assert.equal(parseSecProt(formatSecProt(p)), p);
  for (const bad of ["", "rwxudr", "a", "R", "r w"]) {
    assert.throws(() => parseSecProt(bad), TypeError, bad);
  }
  assert.deepEqual(
    [SecProt.Read, SecProt.Write, SecProt.Exec, SecProt.Use, SecProt.Delete],
    [1, 2, 4, 8, 16],
  );
});
