// Stop the cluster recorded in the directory Deno.args[0] (cluster_test.ts runs this in
// another process); prints how many servers it stopped.
import { stopCluster } from "../cluster.ts";

console.log(await stopCluster(Deno.args[0]!));
