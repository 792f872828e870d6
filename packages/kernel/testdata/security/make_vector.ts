/**
 * Writes the interop vectors of this folder from the openssl-made keys:
 * `deno run --allow-read --allow-write make_vector.ts` (see README.txt).
 * The signatures are ours (WebCrypto through `signCapability`); ECDSA
 * signatures are randomized, so running it again changes `signature`.
 *
 * @module
 */
import {
  type CapFields,
  CapFlag,
  formatId,
  SecProt,
  serializeCap,
  signCapability,
  signedMessage,
} from "../../abi/mod.ts";

const here = new URL(".", import.meta.url);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const pemBody = (pem: string) =>
  Uint8Array.from(
    atob(pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "")),
    (c) => c.charCodeAt(0),
  );

for (const scheme of ["p256", "ed25519"] as const) {
  const fields: CapFields = {
    target: 0x1f2e3d4c5b6a79880123456789abcdefn,
    accessor: 0x0a1b2c3d4e5f60718293a4b5c6d7e8f9n,
    prot: SecProt.Read | SecProt.Use,
    flags: CapFlag.Sha256 | (scheme === "ed25519" ? CapFlag.Ed25519 : 0),
    expiry: 1893456000_000000000n, // 2030-01-01T00:00:00Z in ns
    gate: { offset: 0x1000n, length: 0x2000n, align: 16n },
  };
  const key = pemBody(await Deno.readTextFile(new URL(`${scheme}_private.pem`, here)));
  const cap = await signCapability(fields, key);
  const vector = {
    scheme: scheme === "p256" ? "ecdsa-p256" : "ed25519",
    fields: {
      target: formatId(fields.target),
      accessor: formatId(fields.accessor),
      prot: fields.prot,
      flags: fields.flags,
      expiry: fields.expiry.toString(),
      gate: {
        offset: fields.gate.offset.toString(),
        length: fields.gate.length.toString(),
        align: fields.gate.align.toString(),
      },
    },
    serialization: hex(serializeCap(fields)),
    message: hex(signedMessage(cap)),
    signature: hex(cap.signature),
  };
  await Deno.writeTextFile(
    new URL(`${scheme}_vector.json`, here),
    JSON.stringify(vector, null, 2) + "\n",
  );
}
