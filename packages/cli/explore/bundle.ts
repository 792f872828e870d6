/**
 * The explorer's page, bundled: `bundleExplorerUi()` turns the TypeScript
 * and CSS of `ui/` into one minified script (`/app.js`), one stylesheet
 * (`/app.css`) and the page (`/`), with esbuild, the first time it is called
 * in a process (later calls get the same result). Everything the page needs is
 * in these three texts: no CDN, nothing fetched from the network, ever.
 *
 * The page's HTML holds `TOKEN_PLACEHOLDER` where the server puts the
 * session's token: in `<meta name="twz-token">` (where the script reads it)
 * and in the `?token=` of the script and stylesheet URLs (a `<script>` or
 * `<link>` cannot send a header). The server replaces every occurrence.
 *
 * The page's code (`ui/`) is type-checked with the DOM library as its own
 * workspace member (`ui/deno.json`), since a `/// <reference lib="dom" />`
 * would apply to the whole program of the cli.
 *
 * @example Serve the page
 * ```ts ignore
 * import { bundleExplorerUi, TOKEN_PLACEHOLDER } from "./bundle.ts";
 * const ui = await bundleExplorerUi();
 * const page = ui.html.replaceAll(TOKEN_PLACEHOLDER, token);
 * ```
 *
 * @module
 */
import * as esbuild from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, TwzError } from "@twz/kernel/abi";

/** What the page's HTML holds where the server puts the token (hex: no escaping needed). */
export const TOKEN_PLACEHOLDER = "__TWZ_TOKEN__";

/** The bundled page. */
export interface ExplorerUi {
  /** The page (`/`), with `TOKEN_PLACEHOLDER` where the token goes. */
  html: string;
  /** The script (`/app.js`): one minified classic script. */
  js: string;
  /** The stylesheet (`/app.css`), minified. */
  css: string;
}

/** The page's sources. */
const UI = join(dirname(fileURLToPath(import.meta.url)), "ui");

let built: Promise<ExplorerUi> | undefined;

/**
 * The explorer's page, bundled once per process (a failed build is retried by
 * the next call).
 *
 * @returns The page's HTML, script and stylesheet.
 * @throws {TwzError} `NotSupported` with one line when esbuild fails (a
 *   broken source file, or no esbuild binary).
 * @tags allow-read, allow-env, allow-run
 */
export function bundleExplorerUi(): Promise<ExplorerUi> {
  built ??= build().catch((error) => {
    built = undefined;
    throw error;
  });
  return built;
}

async function build(): Promise<ExplorerUi> {
  const html = await Deno.readTextFile(join(UI, "index.html"));
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await esbuild.build({
      entryPoints: { app: join(UI, "main.ts"), "app-style": join(UI, "style.css") },
      outdir: "/explorer-out",
      bundle: true,
      minify: true,
      format: "iife",
      platform: "browser",
      target: ["es2022", "chrome110", "firefox110", "safari16"],
      write: false,
      logLevel: "silent",
      legalComments: "none",
      charset: "utf8",
    });
  } catch (error) {
    const first = (error as { errors?: esbuild.Message[] }).errors?.[0];
    const where = first?.location ? ` (${first.location.file}:${first.location.line})` : "";
    throw new TwzError(
      ErrorCode.NotSupported,
      `cannot bundle the explorer's page: ${first?.text ?? (error as Error).message}${where}`,
    );
  } finally {
    // esbuild's service is a child process that would keep the process alive.
    // The service restarts for the next build; a program bundle (`_bundle.ts`)
    // running at the same moment in this process is not expected (the
    // explorer builds its page once, at start).
    await esbuild.stop();
  }
  const out = (ext: string) => {
    const file = result.outputFiles.find((f) => f.path.endsWith(ext));
    if (!file) throw new TwzError(ErrorCode.NotSupported, `bundling the explorer made no ${ext}`);
    return file.text;
  };
  return { html, js: out(".js"), css: out(".css") };
}
