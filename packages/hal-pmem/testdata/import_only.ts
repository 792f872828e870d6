// Run with no permissions by mod_test.ts: importing the plugin must not need
// --allow-ffi (or anything), because it loads nothing until open().
import { plugin } from "../mod.ts";

console.log(plugin.name, typeof plugin.open);
