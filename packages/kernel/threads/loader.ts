/**
 * The trusted loader: the first and only code the kernel runs in a thread's
 * Worker (permissions `"none"`). It waits for the start message, imports the
 * program (one ES module, from the `blob:` URL the kernel made of the code
 * object's text and keeps for later starts), calls its default export with
 * the thread's `ThreadInit`, and reports how that went on a private message
 * port the program cannot reach (it lives in the loader's closure):
 *
 * | message                         | when                                           |
 * | ------------------------------- | ---------------------------------------------- |
 * | `{ t: "running" }`              | the module was imported; its start function runs |
 * | `{ t: "load", name, message }`  | the import failed or there is no default export |
 * | `{ t: "done", code }`           | the start function returned (a number is the exit code) |
 * | `{ t: "exception", name, code, message }` | the start function threw or rejected |
 * | `{ t: "pong" }`                 | answer to `{ t: "ping" }`: the thread's event loop runs |
 *
 * The loader itself starts from a `blob:` URL too: its source is the text
 * of {@linkcode loaderMain}, which therefore must not refer to anything
 * outside its own body. So the Worker's main module names no file: in Deno
 * 2.9 a permissions-none Worker still loads files its main module names by
 * literal specifiers (see docs/THREADS.md, "Gaps and limits").
 *
 * @module
 */

/** The start message the kernel posts to a new thread's Worker. */
export interface LoaderStart {
  /** Always `"start"`. */
  t: "start";
  /** The thread's init (posted with `memory` transferred). */
  init: unknown;
  /**
   * A `blob:` URL of the program's module text. The kernel made it and owns
   * it (the loader never revokes it): it is the same for every start of one
   * code object, so Deno's cache of compiled code serves later starts.
   */
  url: string;
  /** The loader's private port back to the kernel (transferred). */
  report: MessagePort;
}

/**
 * The loader's body (runs inside the Worker; see the module doc). Never
 * called in the kernel: its text is the loader's source.
 */
export function loaderMain(): void {
  const scope = globalThis as unknown as {
    addEventListener(type: string, f: (e: MessageEvent) => void): void;
  };
  let report: MessagePort | undefined;
  // The program's URL is the kernel's, kept for later starts of the same
  // code object: the program may not revoke it.
  let own = "";
  const revoke = URL.revokeObjectURL.bind(URL);
  URL.revokeObjectURL = (url: string) => {
    if (String(url) !== own) revoke(url);
  };
  const describe = (e: unknown) => {
    const err = e as { name?: unknown; code?: unknown; message?: unknown } | null;
    const name = typeof err?.name === "string" ? err.name : "Error";
    const message = typeof err?.message === "string" ? err.message : String(e);
    const code = typeof err?.code === "number" ? err.code : 0;
    return { name, code, message };
  };
  const run = async (init: unknown, url: string, port: MessagePort) => {
    let main: unknown;
    try {
      main = (await import(url)).default;
      if (typeof main !== "function") {
        throw new TypeError("the program's module has no default export function");
      }
    } catch (e) {
      port.postMessage({ t: "load", ...describe(e) });
      return;
    }
    port.postMessage({ t: "running" });
    try {
      const r = await (main as (init: unknown) => unknown)(init);
      port.postMessage({ t: "done", code: typeof r === "number" && Number.isInteger(r) ? r : 0 });
    } catch (e) {
      port.postMessage({ t: "exception", ...describe(e) });
    }
  };
  // An error nobody caught (a throwing timer callback, an unhandled
  // rejection) ends the thread: reported here, so it never reaches the
  // kernel's own process as an uncaught worker error.
  const uncaught = (e: Event, error: unknown) => {
    e.preventDefault();
    report?.postMessage({ t: "exception", ...describe(error) });
  };
  scope.addEventListener(
    "error",
    (e) => uncaught(e, (e as unknown as ErrorEvent).error ?? (e as unknown as ErrorEvent).message),
  );
  scope.addEventListener(
    "unhandledrejection",
    (e) => uncaught(e, (e as unknown as PromiseRejectionEvent).reason),
  );
  // `close()` and `Deno.exit(code)` end a Worker silently: report them as
  // the end of the thread (code 0, or the exit code) before the Worker goes.
  const g = globalThis as unknown as { close(): void; Deno?: { exit(code?: number): never } };
  const realClose = g.close.bind(g);
  const leave = (code: number) => {
    report?.postMessage({ t: "done", code: Number.isInteger(code) ? code : 0 });
    realClose();
  };
  g.close = () => leave(0);
  try {
    if (g.Deno) g.Deno.exit = ((code?: number) => leave(code ?? 0)) as (code?: number) => never;
  } catch {
    // A frozen Deno namespace: exit() then ends the Worker unreported (kill ends the thread).
  }
  scope.addEventListener("message", (e: MessageEvent) => {
    const m = e.data as { t?: unknown; init?: unknown; url?: unknown; report?: unknown };
    if (report !== undefined || m?.t !== "start" || typeof m.url !== "string") return;
    const port = m.report as MessagePort;
    report = port;
    own = m.url;
    port.onmessage = (p: MessageEvent) => {
      if ((p.data as { t?: unknown })?.t === "ping") port.postMessage({ t: "pong" });
    };
    void run(m.init, m.url, port);
  });
}

/** The loader's module source (the text of {@linkcode loaderMain}, called). */
export function loaderSource(): string {
  return `(${loaderMain.toString()})();\n`;
}
