/**
 * The specs of `twz explore` and `twz graph` (their options, arguments and
 * help), apart from what runs them: `twz` lists every command's help at
 * start-up, and loads the explorer (its model over every collection, its
 * server and page bundler) only when one of the two runs.
 *
 * @module
 */
import type { CommandSpec } from "../_args.ts";
import { MAX_NODES } from "./graph.ts";

/** `twz explore`'s options: what parses them and what `twz explore --help` prints. */
export const EXPLORE: CommandSpec = {
  name: "twz explore",
  summary: "serve a local web page showing the objects, names, pointers, collections and " +
    "threads of an image (read-only unless --write)",
  options: [
    { name: "--image", value: "PATH", summary: "the image (default ./twz.img; never created)" },
    { name: "--hal", value: "HAL", choices: ["sim", "pmem"], summary: "the HAL (default sim)" },
    { name: "--port", value: "N", summary: "the port on 127.0.0.1 (default: a free one)" },
    {
      name: "--context",
      value: "ID|PATH",
      summary: "show what this security context may see (default: the admin session)",
    },
    { name: "--write", summary: "allow writing object bytes from the page" },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  details: [
    "The page is served on 127.0.0.1 only; its URL (printed on start) carries a random token " +
    "that every request must give, and requests with a foreign Host or Origin are refused. " +
    "A running twz boot's image is explored through its control socket; otherwise the image is " +
    "booted read-only in this process (with --write: writable). Ctrl-C stops it.",
    "Exit codes: 0 stopped; 2 usage; 3 the image cannot be opened; 5 the image is in use and " +
    "no system answers on its socket.",
  ],
};

/** The deepest `--depth` `twz graph` takes. */
export const MAX_DEPTH = 64;

/** `twz graph`'s options: what parses them and what `twz graph --help` prints. */
export const GRAPH: CommandSpec = {
  name: "twz graph",
  summary: "write the pointer graph around an object (objects, FOT entries, ties) as DOT, " +
    "SVG or JSON",
  options: [
    { name: "--image", value: "PATH", summary: "the image (default ./twz.img; never created)" },
    { name: "--hal", value: "HAL", choices: ["sim", "pmem"], summary: "the HAL (default sim)" },
    {
      name: "--depth",
      value: "N",
      summary: `hops from OBJ (0 to ${MAX_DEPTH}, default 1)`,
    },
    {
      name: "--format",
      value: "FORMAT",
      choices: ["dot", "svg", "json"],
      summary: "DOT (Graphviz's language), SVG laid out by Graphviz's dot, or JSON (default dot)",
    },
    { name: "--output", value: "FILE", summary: "write it to FILE (default: standard output)" },
    { name: "--debug", summary: "stack traces on errors" },
  ],
  args: [{ name: "OBJ", summary: "the object: its ID (32 hex digits) or a path naming it" }],
  details: [
    `The graph is walked breadth-first from OBJ, each object once, at most ${MAX_NODES} ` +
    'objects (a DOT graph then says it was truncated; JSON has "truncated": true). The image ' +
    "is opened read-only (a running twz boot's image through its control socket). --format svg " +
    "needs Graphviz (apt-get install graphviz; TWZ_DOT names another dot).",
    "Exit codes: 0 written; 1 the object or the output failed; 2 usage; 3 the image cannot be " +
    "opened; 5 the image is in use and no system answers on its socket.",
  ],
};
