/**
 * cmd-nsc entry point. Without arguments it is the client (config from the environment, see --help); with a
 * subcommand (`list …`, `watch …`) it is the operator CLI, whose results go to stdout and logs to stderr.
 */
import { EXIT_CONFIG, runMain } from "@nsm-ts/base/config";
import { CLI_COMMANDS, CLI_USAGE, type CliCommand, parseCliArgs, runCli } from "./cli.js";
import { cliConfig } from "./cli-config.js";
import { config } from "./config.js";
import { run } from "./run.js";

const argv = process.argv.slice(2);
const io = {
  argv,
  env: process.env,
  exit: (code: number): never => process.exit(code),
  stdout: process.stdout,
  stderr: process.stderr,
  signals: process,
};

if (argv[0] !== undefined && (CLI_COMMANDS as readonly string[]).includes(argv[0])) {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${CLI_USAGE}\n${cliConfig.help("cmd-nsc")}`);
    process.exit(0);
  }
  let cmd: CliCommand;
  try {
    cmd = parseCliArgs(argv);
  } catch (err) {
    process.stderr.write(`cmd-nsc: ${(err as Error).message} (see cmd-nsc ${argv[0]} --help)\n`);
    process.exit(EXIT_CONFIG);
  }
  // Logs (the dev-mode warning, errors) go to stderr so stdout carries only the table or JSON.
  await runMain(
    "cmd-nsc",
    cliConfig,
    (cfg, ctx) => runCli(cmd, cfg, ctx, process.stdout),
    { ...io, stdout: process.stderr },
    { acceptArgs: true },
  );
} else {
  await runMain("cmd-nsc", config, run, io);
}
