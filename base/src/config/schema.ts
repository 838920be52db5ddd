/**
 * A typed table of environment variables: each entry has its upstream name, a description, an optional raw
 * default and a parser. The table parses an env object the caller passes in (the SDK never reads
 * `process.env`) and renders the `--help` table, so the documentation cannot drift from what is read.
 */

/** One environment variable of a program. */
export interface ConfigVar<T> {
  /** Environment variable name, e.g. `NSM_LISTEN_ON`. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /** Raw default, parsed like user input (so defaults are validated by the same code). */
  readonly default?: string;
  /** How `--help` shows a default that is computed at start (e.g. `nsmgr-<hostname>`). */
  readonly defaultLabel?: string;
  /** The program cannot start without it (ignored when a default exists). */
  readonly required?: boolean;
  /** Turns the raw text into the value; throws an `Error` whose message says why the text is wrong. */
  parse(raw: string): T;
}

/** The parsed type of one variable: `T`, or `T | undefined` when it is optional without a default. */
export type ConfigValue<V> =
  V extends ConfigVar<infer T> ? (V extends { required: true } | { default: string } ? T : T | undefined) : never;

/** The parsed configuration of a schema, one property per table entry. */
export type ConfigValues<S extends Record<string, ConfigVar<unknown>>> = { -readonly [K in keyof S]: ConfigValue<S[K]> };

/** A configuration error; `variable` is the environment variable to fix, and the message starts with it. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The environment variable at fault. */
  readonly variable: string;

  constructor(variable: string, reason: string, opts?: { cause?: unknown }) {
    super(`${variable}: ${reason}`, opts);
    this.variable = variable;
  }
}

/** Options of `defineConfig`. */
export interface ConfigOptions<S extends Record<string, ConfigVar<unknown>>> {
  /** Checks across variables after each one parsed; throw `ConfigError` (e.g. via `allOrNone`). */
  validate?: (cfg: ConfigValues<S>) => void;
}

/** A program's configuration table. */
export interface ConfigSchema<S extends Record<string, ConfigVar<unknown>>> {
  /** The table entries, keyed by property name. */
  readonly vars: S;
  /**
   * Parses `env` (usually `process.env`, passed by the program). An empty value counts as unset, as in
   * Kubernetes manifests that set `value: ""`. Throws `ConfigError` naming the first bad variable.
   */
  parse(env: Readonly<Record<string, string | undefined>>): ConfigValues<S>;
  /** The `--help` text: a usage line and a table of name, default and description. */
  help(program: string): string;
  /** Every environment variable name the program reads, in table order. */
  names(): string[];
}

/** Builds a configuration table; keep `vars` a literal so required/defaulted entries type as non-optional. */
export function defineConfig<const S extends Record<string, ConfigVar<unknown>>>(vars: S, opts: ConfigOptions<S> = {}): ConfigSchema<S> {
  const entries = Object.entries(vars) as [keyof S & string, ConfigVar<unknown>][];
  const seen = new Set<string>();
  for (const [, v] of entries) {
    // A duplicate would make one entry silently shadow another in manifests and help.
    if (seen.has(v.name)) throw new Error(`defineConfig: variable ${v.name} is listed twice`);
    seen.add(v.name);
  }
  return {
    vars,
    parse(env) {
      const out: Record<string, unknown> = {};
      for (const [key, v] of entries) {
        const given = env[v.name];
        const raw = given === undefined || given.trim() === "" ? v.default : given;
        if (raw === undefined) {
          if (v.required) throw new ConfigError(v.name, `is required: ${v.description}`);
          out[key] = undefined;
          continue;
        }
        try {
          out[key] = v.parse(raw);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          const from = raw === given ? "" : " (the default)";
          throw new ConfigError(v.name, `${reason}${from}`, { cause: err });
        }
      }
      const cfg = out as ConfigValues<S>;
      opts.validate?.(cfg);
      return cfg;
    },
    help(program) {
      const rows = entries.map(([, v]) => {
        const def = v.defaultLabel ?? v.default ?? (v.required ? "(required)" : "");
        return [v.name, def, v.description] as const;
      });
      const w0 = Math.max("VARIABLE".length, ...rows.map((r) => r[0].length));
      const w1 = Math.max("DEFAULT".length, ...rows.map((r) => r[1].length));
      const line = (a: string, b: string, c: string): string => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd();
      return [
        `Usage: ${program} [--help]`,
        "",
        `${program} is configured only by environment variables (an empty value counts as unset):`,
        "",
        line("VARIABLE", "DEFAULT", "DESCRIPTION"),
        ...rows.map((r) => line(r[0], r[1], r[2])),
        "",
      ].join("\n");
    },
    names() {
      return entries.map(([, v]) => v.name);
    },
  };
}

/**
 * Throws `ConfigError` unless all or none of the given variables are set; for settings that only make sense
 * together, such as a certificate, its key and the CA bundle.
 */
export function allOrNone(values: Readonly<Record<string, unknown>>): void {
  const names = Object.keys(values);
  const set = names.filter((n) => values[n] !== undefined);
  if (set.length === 0 || set.length === names.length) return;
  const missing = names.filter((n) => values[n] === undefined);
  throw new ConfigError(
    missing[0] ?? "",
    `${names.join(", ")} must be set together or not at all; ${set.join(", ")} set but ${missing.join(", ")} missing`,
  );
}
