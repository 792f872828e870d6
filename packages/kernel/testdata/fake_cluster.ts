// A fake global space for the kernel's tests (global_test.ts and
// threads/global_test.ts): a GlobalHook over a Map of ID -> bytes acting as
// the cluster, recording what the kernel asked of it.
import type { GlobalHook, Kernel, ObjID } from "@twz/kernel";
import { type GlobalOp, type GlobalOps, Prot } from "@twz/kernel/abi";
import type { Principal } from "../_security.ts";

/** One object of the fake cluster. */
export interface Remote {
  /** Its bytes (what `fetchMissing` adopts). */
  bytes: Uint8Array;
  /** Its default protections. */
  prot: number;
  /** Its key (0n: none). */
  keyId: ObjID;
  /** A newer version `refresh` installs (`kernel.replaceContents`). */
  next?: Uint8Array;
}

/** A GlobalHook over a Map (the "cluster"), recording what the kernel asked. */
export class FakeCluster implements GlobalHook {
  /** The node's name. */
  readonly node = "node-a";
  /** The cluster's objects. */
  readonly objects = new Map<ObjID, Remote>();
  /** IDs fetchMissing was asked for, in order. */
  readonly fetched: ObjID[] = [];
  /** mapLimit per ID (absent: Prot.All). */
  readonly limits = new Map<ObjID, number>();
  /** Every `call`, in order. */
  readonly calls: { op: GlobalOp; args: unknown; principal: Principal }[] = [];
  /** The kernel it adopts into (set before use). */
  kernel: Kernel | undefined;

  /** Adopt `id` from the map (false when the map lacks it). */
  fetchMissing(id: ObjID): boolean {
    this.fetched.push(id);
    const o = this.objects.get(id);
    if (o === undefined) return false;
    this.kernel!.adopt(id, o.bytes, { prot: o.prot, keyId: o.keyId });
    return true;
  }
  /** The limit set in `limits`, else every protection. */
  mapLimit(id: ObjID): number {
    return this.limits.get(id) ?? Prot.All;
  }
  /** Record the call; `status` answers a status, `refresh` installs `next`. */
  call<K extends GlobalOp>(op: K, args: GlobalOps[K][0], principal: Principal): GlobalOps[K][1] {
    this.calls.push({ op, args, principal });
    if (op === "refresh") {
      const id = (args as GlobalOps["refresh"][0]).id;
      const next = this.objects.get(id)?.next;
      if (next !== undefined) this.kernel!.replaceContents(id, next);
    }
    if (op === "status") {
      return {
        node: this.node,
        servers: [],
        connected: true,
        leaseMs: 1000,
        held: 0,
        owned: 0,
        unacked: 0,
      } as GlobalOps[K][1];
    }
    return undefined as GlobalOps[K][1];
  }
}

/** A valid ID nobody holds (upper half non-zero). */
export function freshId(n: number): ObjID {
  return (BigInt(0x7000_0000 + n) << 96n) | BigInt(n * 7919 + 1);
}
