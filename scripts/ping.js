// The ping step of `npm start`'s kernel-mode demo, a module of its own so a test can run it with the command name
// and PATH of its choice. A missing ping must not pass for a data plane that drops packets: `ip netns exec` exits 1
// both when ping gets no reply and when it cannot exec ping at all.
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Where `command` is on `path` (what `command -v` answers), or undefined. */
export function findCommand(command, path = process.env.PATH ?? "") {
  const candidates = command.includes("/") ? [command] : path.split(delimiter).map((dir) => join(dir || ".", command));
  return candidates.find((f) => {
    try {
      accessSync(f, constants.X_OK);
      return statSync(f).isFile();
    } catch {
      return false;
    }
  });
}

/**
 * Sends one echo request to `dst`, from inside network namespace `netns` when given, and resolves with
 * `{ status: "ok", rtt? }`, `{ status: "no reply" }` or `{ status: "missing", command }` (not installed).
 */
export async function pingOnce(dst, { netns, command = "ping", env = process.env } = {}) {
  // `ip netns exec` looks the command up on the same PATH, so this answers for inside the namespace too.
  if (findCommand(command, env.PATH) === undefined) return { status: "missing", command };
  const argv = [command, "-c", "1", "-W", "2", dst];
  const [cmd, args] = netns ? ["ip", ["netns", "exec", netns, ...argv]] : [argv[0], argv.slice(1)];
  const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s) => (stdout += s));
  child.stderr.setEncoding("utf8").on("data", (s) => (stderr += s));
  // An exit code, or the Error of a spawn that failed.
  const ended = await new Promise((resolve) => {
    child.once("error", resolve);
    child.once("close", resolve);
  });
  // The look-up raced a removal, or the namespace sees another file system: the failed exec says the same.
  if (ended?.code === "ENOENT" || /exec of "[^"]*" failed: No such file/.test(stderr)) return { status: "missing", command };
  if (ended instanceof Error) throw ended;
  if (ended !== 0) return { status: "no reply" };
  const rtt = /time=([\d.]+ ms)/.exec(stdout)?.[1];
  return rtt ? { status: "ok", rtt } : { status: "ok" };
}

/** The outcome as `npm start` prints it after "ping <dst> …: ". */
export function describePing(result) {
  switch (result.status) {
    case "ok":
      return `ok${result.rtt ? ` (${result.rtt})` : ""}`;
    case "missing":
      return `not tried: \`${result.command}\` is not installed (Debian: apt-get install iputils-ping)`;
    default:
      return "no reply";
  }
}
