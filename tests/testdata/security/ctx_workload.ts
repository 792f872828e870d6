// A crash-test workload for security contexts (tests/security_fsck_test.ts;
// `twz crashtest tests/testdata/security/ctx_workload.ts`): a key, a keyed
// object, a context, then grants added and removed and a mask set, each
// acknowledged in the journal. After every crash the context must decode
// and hold exactly the acknowledged grants (an operation in flight may
// have happened or not), and the keyed object must still be readable
// through a grant that survived. See docs/SECURITY.md.
import type { Workload } from "@twz/crashtest";
import {
  type Capability,
  CapFlag,
  encodeGrant,
  generateKeyPair,
  type ObjID,
  SecProt,
  signCapability,
  WHOLE_OBJECT,
} from "@twz/kernel/abi";

/** Grants the run adds (their protections), in order. */
const PROTS = [
  SecProt.Read,
  SecProt.Read | SecProt.Write,
  SecProt.Read | SecProt.Delete,
  SecProt.Exec,
];

/** The workload: `ctx-grants`. */
export const workload: Workload = {
  name: "ctx-grants",
  summary: "security contexts: ctxAdd, ctxRemove and ctxMask crashed at every drain",
  imageSize: 1 << 20,
  async run({ kernel, journal }) {
    const port = kernel.port();
    const pair = await generateKeyPair("ecdsa-p256");
    const key = await port.keyCreate({ ...pair });
    const target = journal.record(
      "create",
      {},
      () => port.create({ size: 4096, prot: 0, keyId: key.kuid }),
    );
    const ctx = journal.record("ctxCreate", {}, () => port.ctxCreate());
    const grants: Capability[] = [];
    for (const prot of PROTS) {
      grants.push(
        await signCapability({
          target,
          accessor: ctx,
          prot,
          flags: CapFlag.Sha256,
          expiry: 0n,
          gate: { ...WHOLE_OBJECT },
        }, pair.privateKey),
      );
    }
    const index: number[] = [];
    for (let i = 0; i < 2; i++) {
      index.push(
        journal.record(
          "add",
          { i, prot: PROTS[i] },
          () => port.ctxAdd(ctx, encodeGrant(grants[i]!)),
        ),
      );
    }
    journal.record("remove", { i: 0 }, () => port.ctxRemove(ctx, index[0]!));
    for (let i = 2; i < PROTS.length; i++) {
      index.push(
        journal.record(
          "add",
          { i, prot: PROTS[i] },
          () => port.ctxAdd(ctx, encodeGrant(grants[i]!)),
        ),
      );
    }
    journal.record("mask", {}, () => port.ctxMask(ctx, target, SecProt.Read | SecProt.Write));
    journal.record("remove", { i: 2 }, () => port.ctxRemove(ctx, index[2]!));
  },
  async check(kernel, journal) {
    const port = kernel.port();
    const ctxEntry = journal.find((e) => e.op === "ctxCreate");
    if (ctxEntry?.state !== "done") return [];
    const ctx = ctxEntry.result as ObjID;
    const info = port.ctxInfo(ctx); // throws when the context does not decode
    const present = new Set(info.grants.map((g) => g.grant.prot));
    const problems: string[] = [];
    // Each grant: added and not removed → must be there; never added → must not.
    const fate = new Map<number, { added: string; removed: string }>();
    for (const e of journal) {
      const i = (e.args as { i?: number }).i;
      if (i === undefined) continue;
      const f = fate.get(i) ?? { added: "none", removed: "none" };
      if (e.op === "add") f.added = e.state;
      if (e.op === "remove") f.removed = e.state;
      fate.set(i, f);
    }
    for (const [i, f] of fate) {
      const has = present.has(PROTS[i]!);
      if (f.added === "done" && f.removed === "none" && !has) {
        problems.push(`grant ${i}: acknowledged, missing`);
      }
      if (f.added === "none" && has) problems.push(`grant ${i}: never added, present`);
      if (f.removed === "done" && has) {
        problems.push(`grant ${i}: removal acknowledged, still present`);
      }
    }
    if (info.grants.length > PROTS.length) problems.push(`${info.grants.length} grants`);
    const mask = journal.find((e) => e.op === "mask");
    const target = journal.find((e) => e.op === "create")!.result as ObjID;
    const masked = info.masks.find((m) => m.target === target);
    if (mask?.state === "done" && masked?.prot !== (SecProt.Read | SecProt.Write)) {
      problems.push(`mask acknowledged, found ${JSON.stringify(masked)}`);
    }
    // A surviving read grant still grants read after recovery (verified anew).
    if (present.has(SecProt.Read | SecProt.Write)) {
      const r = await port.access(target, [ctx]);
      if ((r.prot & SecProt.Read) === 0) {
        problems.push(`read not granted after recovery: ${JSON.stringify(r.reasons)}`);
      }
    }
    return problems;
  },
};

export default workload;
