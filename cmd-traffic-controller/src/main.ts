/**
 * cmd-traffic-controller entry point. Without arguments it is the controller (config from the environment, see
 * --help); `status …` is the operator CLI (results on stdout, logs on stderr).
 */
import { EXIT_CONFIG, runMain } from "@nsm-ts/base/config";
import { config, statusConfig } from "./config.js";
import { run } from "./run.js";
import { parseStatusArgs, runStatus, STATUS_USAGE, type StatusArgs } from "./status-cli.js";

const argv = process.argv.slice(2);
const io = {
  argv,
  env: process.env,
  exit: (code: number): never => process.exit(code),
  stdout: process.stdout,
  stderr: process.stderr,
  signals: process,
};

if (argv[0] === "status") {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${STATUS_USAGE}\n${statusConfig.help("cmd-traffic-controller status")}`);
    process.exit(0);
  }
  let args: StatusArgs;
  try {
    args = parseStatusArgs(argv.slice(1));
  } catch (err) {
    process.stderr.write(`cmd-traffic-controller: status: ${(err as Error).message} (see cmd-traffic-controller status --help)\n`);
    process.exit(EXIT_CONFIG);
  }
  await runMain(
    "cmd-traffic-controller",
    statusConfig,
    (cfg, ctx) => runStatus(args, cfg, ctx, process.stdout),
    { ...io, stdout: process.stderr },
    { acceptArgs: true },
  );
} else {
  await runMain("cmd-traffic-controller", config, run, io);
}
