/**
 * `twz explore`: serve the object explorer, a local web page over a system's
 * objects, names, pointers, collections and threads.
 *
 * ```
 * twz explore [--image P] [--hal sim|pmem] [--port N] [--context ID|PATH] [--write] [--debug]
 * ```
 *
 * The image is booted read-only in this process, or, when a running
 * `twz boot` holds it, reached through its control socket. The server
 * listens on 127.0.0.1 only and prints one line with the page's URL (a
 * random token in it); it runs until SIGINT or SIGTERM, then closes the
 * system cleanly. Writes (the hex view's edits) are refused unless
 * `--write` is given. Exit codes: 0 stopped by a signal, 2 usage, 3 the image
 * cannot be opened, 5 the image is held and no system answers on its socket.
 *
 * @module
 */
import { HalError } from "@twz/kernel/hal";
import { looksLikeId, type ObjID, parseId, TwzError } from "@twz/kernel/abi";
import type { HalName } from "@twz/libtwz/embedded";
import { UsageError } from "../board.ts";
import { count, parseArgv, quoted } from "../_args.ts";
import { EXIT } from "../_exit.ts";
import { ExplorerError, ExplorerModel, type OpenedSystem, openSystem } from "./model.ts";
import { startExplorer } from "./server.ts";
import { EXPLORE } from "./specs.ts";

export { EXPLORE };

/**
 * `twz explore` on the command line; returns the exit code once stopped.
 *
 * @param argv Arguments after `explore` (parsed by {@linkcode EXPLORE}).
 * @returns The exit code.
 * @throws {UsageError} A usage mistake (one line).
 */
export async function main(argv: string[]): Promise<number> {
  const p = parseArgv(EXPLORE, argv);
  const image = p.value("--image") ?? "twz.img";
  if (image === "") throw new UsageError("--image: an empty path");
  const hal = (p.value("--hal") ?? "sim") as HalName;
  const portText = p.value("--port");
  const port = portText === undefined ? 0 : count(portText, "--port");
  if (port > 65535) throw new UsageError(`--port: ${port} is not a port (0 to 65535)`);
  const contextText = p.value("--context");
  if (contextText !== undefined && !looksLikeId(contextText) && !contextText.startsWith("/")) {
    throw new UsageError(
      `--context: ${quoted(contextText)} is neither an object ID (32 hex digits) nor a path`,
    );
  }
  const write = p.has("--write");
  const debug = p.has("--debug");

  let sys: OpenedSystem;
  try {
    sys = await openSystem({ image, hal, write });
  } catch (error) {
    return cannotOpen(image, error, debug);
  }
  let server;
  try {
    let context: ObjID | null = null;
    if (contextText !== undefined) {
      try {
        context = looksLikeId(contextText)
          ? parseId(contextText)
          : sys.twz.naming.resolve(contextText);
      } catch (error) {
        throw new UsageError(`--context: ${firstLine(error)}`);
      }
    }
    let model: ExplorerModel;
    try {
      model = new ExplorerModel(sys, { context });
    } catch (error) {
      if (error instanceof ExplorerError) throw new UsageError(`--context: ${error.message}`);
      throw error;
    }
    try {
      await model.refresh();
      // List, sort and index names once before the URL is printed: the first page is then quick.
      model.objects({ offset: 0, limit: 1 });
      server = await startExplorer(model, { port, write });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new UsageError(`--port: ${port} is in use`);
      }
      throw error;
    }
  } catch (error) {
    sys.close();
    throw error;
  }
  const mode = sys.readOnly ? "read-only" : "writable";
  const via = sys.source === "socket" ? `, through ${image}.sock` : "";
  console.log(`twz: explorer on ${server.url} (${mode}${via}; Ctrl-C stops it)`);
  await untilSignal();
  await server.close();
  sys.close();
  return EXIT.ok;
}

/** Wait for SIGINT or SIGTERM (then stop listening for them). */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const done = () => {
      for (const s of signals) Deno.removeSignalListener(s, done);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, done);
  });
}

/** One line for an image that cannot be opened; the exit code. */
function cannotOpen(image: string, error: unknown, debug: boolean): number {
  if (debug) console.error(error);
  if (error instanceof ExplorerError) {
    console.error(`twz: ${error.message}`);
    return EXIT.image;
  }
  if (error instanceof HalError) {
    console.error(`twz: ${firstLine(error)}`);
    return error.code === "busy" ? EXIT.busy : EXIT.image;
  }
  if (error instanceof TwzError) {
    console.error(`twz: cannot boot ${image}: ${firstLine(error)}`);
    return EXIT.image;
  }
  throw error;
}

function firstLine(error: unknown): string {
  const m = error instanceof Error ? error.message : String(error);
  return m.split("\n")[0]!.trim();
}
