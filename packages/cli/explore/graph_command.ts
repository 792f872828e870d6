/**
 * `twz graph`: the pointer graph around an object, for scripts and
 * documents — the graph the explorer's graph view draws, as DOT, SVG or
 * JSON.
 *
 * ```
 * twz graph OBJ [--image P] [--hal sim|pmem] [--depth N] [--format dot|svg|json] [--output FILE] [--debug]
 * ```
 *
 * The image is opened as `twz explore` opens it (`openSystem`: a read-only
 * boot, or a running `twz boot`'s control socket); the graph is
 * `buildGraph` over the explorer's model (nodes: objects with their name,
 * kind and size; edges: FOT entries and ties), breadth-first from OBJ to
 * `--depth` hops, at most 5,000 nodes. `--format svg` runs Graphviz's `dot`
 * (`apt-get install graphviz`). Exit codes: 0 written; 1 the object cannot
 * be read or the output cannot be made (no Graphviz, an unwritable FILE); 2
 * usage; 3 the image cannot be opened; 5 the image is held and no system
 * answers on its socket.
 *
 * @example
 * ```sh
 * twz graph /demo/list --depth 3 --format svg --output list.svg
 * twz graph /demo/list --format json | jq '.nodes | length'
 * ```
 *
 * @module
 */
import { HalError } from "@twz/kernel/hal";
import { looksLikeId, parseId, TwzError } from "@twz/kernel/abi";
import type { HalName } from "@twz/libtwz/embedded";
import { UsageError } from "../board.ts";
import { count, parseArgv, quoted } from "../_args.ts";
import { EXIT } from "../_exit.ts";
import { ExplorerError, ExplorerModel, type OpenedSystem, openSystem } from "./model.ts";
import { buildGraph, type Graph, MAX_NODES, toDot, toJson, toSvg } from "./graph.ts";
import { GRAPH, MAX_DEPTH } from "./specs.ts";

export { GRAPH, MAX_DEPTH };

/**
 * `twz graph` on the command line; returns the exit code.
 *
 * @param argv Arguments after `graph` (parsed by {@linkcode GRAPH}).
 * @returns The exit code.
 * @throws {UsageError} A usage mistake (one line).
 */
export async function main(argv: string[]): Promise<number> {
  const p = parseArgv(GRAPH, argv);
  const obj = p.arg("OBJ")!;
  if (looksLikeId(obj)) {
    try {
      parseId(obj);
    } catch (error) {
      throw new UsageError(`OBJ: ${firstLine(error)}`);
    }
  } else if (!obj.startsWith("/")) {
    throw new UsageError(`OBJ: ${quoted(obj)} is neither an object ID (32 hex digits) nor a path`);
  }
  const image = p.value("--image") ?? "twz.img";
  if (image === "") throw new UsageError("--image: an empty path");
  const hal = (p.value("--hal") ?? "sim") as HalName;
  const depthText = p.value("--depth");
  const depth = depthText === undefined ? 1 : count(depthText, "--depth");
  if (depth > MAX_DEPTH) {
    throw new UsageError(`--depth: ${depth} is too deep (at most ${MAX_DEPTH})`);
  }
  const format = (p.value("--format") ?? "dot") as "dot" | "svg" | "json";
  const output = p.value("--output");
  if (output === "") throw new UsageError("--output: an empty path");
  const debug = p.has("--debug");

  let sys: OpenedSystem;
  try {
    sys = await openSystem({ image, hal });
  } catch (error) {
    return cannotOpen(image, error, debug);
  }
  let text: string;
  try {
    const model = new ExplorerModel(sys);
    await model.refresh();
    let g: Graph;
    try {
      // The root as the model names objects (32 hex digits), so that edges
      // back to it meet it.
      const root = model.neighbours(obj).node.id;
      g = buildGraph(model, root, { depth, maxNodes: MAX_NODES });
    } catch (error) {
      return failed(`${obj}: ${firstLine(error)}`, error, debug);
    }
    text = format === "json" ? toJson(g) : format === "dot" ? toDot(g) : await toSvg(g);
  } catch (error) {
    if (error instanceof TwzError || error instanceof ExplorerError) {
      return failed(firstLine(error), error, debug);
    }
    throw error;
  } finally {
    sys.close();
  }
  try {
    if (output === undefined) await writeAll(Deno.stdout, text);
    else await Deno.writeTextFile(output, text);
  } catch (error) {
    return failed(`cannot write ${output ?? "the output"}: ${firstLine(error)}`, error, debug);
  }
  return EXIT.ok;
}

/** Write all of `text` to `w`. */
async function writeAll(w: { write(p: Uint8Array): Promise<number> }, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) at += await w.write(bytes.subarray(at));
}

/** One line on stderr (the stack with --debug); exit 1. */
function failed(line: string, error: unknown, debug: boolean): number {
  console.error(`twz: ${line}`);
  if (debug) console.error(error);
  return EXIT.failed;
}

/** One line for an image that cannot be opened; the exit code. */
function cannotOpen(image: string, error: unknown, debug: boolean): number {
  let line: string;
  let code: number = EXIT.image;
  if (error instanceof ExplorerError) line = error.message;
  else if (error instanceof HalError) {
    line = firstLine(error);
    if (error.code === "busy") code = EXIT.busy;
  } else if (error instanceof TwzError) line = `cannot open ${image}: ${firstLine(error)}`;
  else throw error;
  console.error(`twz: ${line}`);
  if (debug) console.error(error);
  return code;
}

function firstLine(error: unknown): string {
  const m = error instanceof Error ? error.message : String(error);
  return m.split("\n")[0]!.trim();
}
