/**
 * The global namespace: a directory tree in the `twz-names` KV bucket.
 *
 * Every entry is one key, its path's components hex-encoded (UTF-8) as NATS
 * tokens: `/lists/demo` is `n.6c69737473.64656d6f`. Its value is the JSON
 * `{ kind: "object" | "dir", id: "<32 hex>" | "0" }`. The root `/` is
 * implicit. A directory's entries are the keys one token below it
 * (`keys("n.<dir>.*")`). Entries are made with `create` (two nodes binding
 * one name: one wins, the other gets `NameExists`) and removed with a
 * delete on their revision. Paths follow libtwz naming's rules and
 * messages (`splitPath`: no empty, `.` or `..` component, at most 231 UTF-8
 * bytes each).
 *
 * @module
 */
import {
  ErrorCode,
  formatId,
  type GlobalEntry,
  type ObjID,
  parseId,
  TwzError,
} from "@twz/kernel/abi";
import { CasConflict, type Link } from "./_link_api.ts";
import { toBytes } from "./_records.ts";

/** The longest name component in UTF-8 bytes (as libtwz naming's `MAX_NAME_BYTES`). */
export const MAX_NAME_BYTES = 231;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One entry's value. */
interface NameRecord {
  kind: "object" | "dir";
  id: string;
}

/**
 * Split and check a global path (without `/global`); `/` is the root.
 *
 * @throws {TwzError} `InvalidArgument` for an empty path or a bad component.
 */
export function splitPath(path: string): string[] {
  if (typeof path !== "string" || path.length === 0) {
    throw new TwzError(ErrorCode.InvalidArgument, "A name cannot be empty");
  }
  const trimmed = path.startsWith("/") ? path.slice(1) : path;
  if (trimmed === "") return [];
  const parts = (trimmed.endsWith("/") ? trimmed.slice(0, -1) : trimmed).split("/");
  for (const p of parts) {
    if (p === "" || p === "." || p === ".." || p.includes("\0")) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `"${path}" is not a valid name (bad component "${p}")`,
      );
    }
    if (enc.encode(p).length > MAX_NAME_BYTES) {
      throw new TwzError(
        ErrorCode.InvalidArgument,
        `Name component "${p}" is longer than ${MAX_NAME_BYTES} UTF-8 bytes`,
      );
    }
  }
  return parts;
}

function join(parts: string[]): string {
  return "/" + parts.join("/");
}

function hex(s: string): string {
  return [...enc.encode(s)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(token: string): string {
  const b = new Uint8Array(token.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(token.slice(i * 2, i * 2 + 2), 16);
  return dec.decode(b);
}

/** The KV key of a path's entry (`n.<hex>...`). */
export function nameKey(parts: string[]): string {
  return ["n", ...parts.map(hex)].join(".");
}

function decodeName(bytes: Uint8Array): NameRecord | null {
  try {
    const r = JSON.parse(dec.decode(bytes));
    if ((r.kind === "object" || r.kind === "dir") && typeof r.id === "string") return r;
  } catch {
    // malformed: treated as absent
  }
  return null;
}

function idOf(r: NameRecord): ObjID {
  return r.id === "0" ? 0n : parseId(r.id);
}

/** The global directory tree over a link (every call synchronous). */
export class GlobalNames {
  readonly #link: Link;

  /** @param link The cluster link. */
  constructor(link: Link) {
    this.#link = link;
  }

  #get(parts: string[]): { rec: NameRecord; revision: number } | null {
    const e = this.#link.get("names", nameKey(parts));
    if (!e) return null;
    const rec = decodeName(e.value);
    return rec ? { rec, revision: e.revision } : null;
  }

  /** Check that every proper prefix of `parts` is a directory (made with `parents`). */
  #parents(parts: string[], create: boolean): void {
    for (let i = 1; i < parts.length; i++) {
      const at = parts.slice(0, i);
      const found = this.#get(at);
      if (!found) {
        if (!create) throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(at)}`);
        try {
          this.#link.create("names", nameKey(at), toBytes({ kind: "dir", id: "0" }));
        } catch (e) {
          if (!(e instanceof CasConflict)) throw e;
          i--; // made meanwhile: look again
        }
        continue;
      }
      if (found.rec.kind !== "dir") {
        throw new TwzError(ErrorCode.InvalidArgument, `${join(at)} is not a directory`);
      }
    }
  }

  /**
   * The object bound at `path` (`0n` for a directory, the root included), or `null`.
   *
   * @throws {TwzError} `InvalidArgument` for a malformed path or a path through a non-directory.
   */
  lookup(path: string): ObjID | null {
    const parts = splitPath(path);
    if (parts.length === 0) return 0n;
    try {
      this.#parents(parts, false);
    } catch (e) {
      if (e instanceof TwzError && e.code === ErrorCode.NameNotFound) return null;
      throw e;
    }
    const found = this.#get(parts);
    return found ? idOf(found.rec) : null;
  }

  /**
   * Bind `path` to `id` (the caller checked that `id` is published).
   *
   * @throws {TwzError} `NameExists`, `NameNotFound` (missing parent without `parents`),
   * `InvalidArgument`.
   */
  bind(path: string, id: ObjID, parents = false): void {
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ is the root directory");
    this.#parents(parts, parents);
    try {
      this.#link.create("names", nameKey(parts), toBytes({ kind: "object", id: formatId(id) }));
    } catch (e) {
      if (e instanceof CasConflict) {
        throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
      }
      throw e;
    }
  }

  /**
   * Make a directory (`parents`: the missing ones above it too, and an
   * existing directory is no error).
   *
   * @throws {TwzError} `NameExists`, `NameNotFound`, `InvalidArgument`.
   */
  mkdir(path: string, parents = false): void {
    const parts = splitPath(path);
    if (parts.length === 0) throw new TwzError(ErrorCode.NameExists, "/ already exists");
    this.#parents(parts, parents);
    try {
      this.#link.create("names", nameKey(parts), toBytes({ kind: "dir", id: "0" }));
    } catch (e) {
      if (!(e instanceof CasConflict)) throw e;
      if (parents && this.#get(parts)?.rec.kind === "dir") return;
      throw new TwzError(ErrorCode.NameExists, `${join(parts)} is already bound`);
    }
  }

  /**
   * Remove a binding or an empty directory.
   *
   * @returns The object it named (`0n` for a directory).
   * @throws {TwzError} `NameNotFound`, `InvalidArgument` (the root, a non-empty directory).
   */
  unbind(path: string): ObjID {
    const parts = splitPath(path);
    if (parts.length === 0) {
      throw new TwzError(ErrorCode.InvalidArgument, "Cannot unbind the root directory");
    }
    this.#parents(parts, false);
    const found = this.#get(parts);
    if (!found) throw new TwzError(ErrorCode.NameNotFound, `No object is named ${join(parts)}`);
    if (found.rec.kind === "dir" && this.#link.keys("names", `${nameKey(parts)}.*`).length > 0) {
      throw new TwzError(ErrorCode.InvalidArgument, `Directory ${join(parts)} is not empty`);
    }
    try {
      this.#link.delete("names", nameKey(parts), found.revision);
    } catch (e) {
      if (e instanceof CasConflict) {
        throw new TwzError(ErrorCode.Busy, `${join(parts)} changed meanwhile: try again`);
      }
      throw e;
    }
    return idOf(found.rec);
  }

  /**
   * A directory's entries, sorted by name.
   *
   * @throws {TwzError} `NameNotFound`, `InvalidArgument` (not a directory).
   */
  list(path: string): GlobalEntry[] {
    const parts = splitPath(path);
    if (parts.length > 0) {
      this.#parents(parts, false);
      const found = this.#get(parts);
      if (!found) throw new TwzError(ErrorCode.NameNotFound, `No directory ${join(parts)}`);
      if (found.rec.kind !== "dir") {
        throw new TwzError(ErrorCode.InvalidArgument, `${join(parts)} is not a directory`);
      }
    }
    const prefix = nameKey(parts);
    const out: GlobalEntry[] = [];
    for (const key of this.#link.keys("names", `${prefix}.*`)) {
      const name = unhex(key.slice(prefix.length + 1));
      const found = this.#get([...parts, name]);
      if (!found) continue; // removed meanwhile
      out.push({
        name,
        kind: found.rec.kind === "dir" ? "dir" : "object",
        id: idOf(found.rec),
      });
    }
    return out.sort((x, y) => x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
  }
}
