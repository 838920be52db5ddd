/** cmd-nsmgr-proxy entry point: the process (env, argv, signals, exit) is handed to the shared runMain. */
import { runMain } from "@nsm-ts/base/config";
import { config } from "./config.js";
import { run } from "./run.js";

await runMain("cmd-nsmgr-proxy", config, run, {
  argv: process.argv.slice(2),
  env: process.env,
  exit: (code) => process.exit(code),
  stdout: process.stdout,
  stderr: process.stderr,
  signals: process,
});
