// A crash-test workload whose own check sees nothing (used by
// tests/crash_test.ts): it names an object, then changes a field of the
// object's meta-info without its checksum, durably. Only `twz fsck --deep`'s
// object check reports that, so `twz crashtest --deep` must, and plain
// `twz crashtest` must not.
import { META_OFFSET, MetaField } from "@twz/kernel/abi";
import type { Kernel } from "@twz/kernel";
import type { Workload, WorkloadContext } from "@twz/crashtest";
import { Twz } from "@twz/libtwz";

/** The blind workload. */
export const workload: Workload = {
  name: "blind-meta",
  summary: "damages a named object's meta-info that its own check never reads (--deep must)",
  imageSize: 1 << 20,
  recover(kernel: Kernel): void {
    Twz.attach(kernel.port());
  },
  run({ kernel, journal }: WorkloadContext): void {
    const twz = Twz.attach(kernel.port());
    const id = journal.record("create", {}, () => twz.create({ size: 4096, name: "/victim" }).id);
    journal.record("damage", {}, () => {
      const obj = twz.open(id);
      const at = META_OFFSET + MetaField.createdSize;
      obj.view.setUint32(at, obj.view.getUint32(at, true) + 64, true); // the checksum is not updated
      obj.persist(at, 4);
    });
  },
  check(): string[] {
    return [];
  },
};
