/**
 * What a program's bin launcher runs. `npm run build` bundles each program (`scripts/bundle.js`): its own code and
 * its pure-JavaScript dependencies in one file, `dist/bundle/main.js`, which starts in about a third of the time
 * of ~500 separate modules (0.3 s against 1.0 s for cmd-nsc on a 2-core machine; every sidecar start and every
 * restart after a crash pays it). The launcher runs that bundle, or the compiled modules (`dist/main.js`) when
 * there is no bundle or one of the files it was made from has changed since (a `tsc -b` without the bundling
 * step), so a stale bundle never runs. This module adds next to nothing to the start (`node:fs`, and the list of
 * packages the bundles leave out).
 */
import { readFileSync, statSync } from "node:fs";

export { LAZY_PACKAGES, type LazyPackage } from "../lazy.js";

/** The list of inputs `scripts/bundle.js` writes beside the bundle: paths relative to the bundle's folder. */
export const BUNDLE_INPUTS = "inputs.json";

/** Runs the program whose launcher is `binUrl` (`import.meta.url` of `bin/<program>.js`). */
export async function launch(binUrl: string): Promise<void> {
  const bundle = new URL("../dist/bundle/main.js", binUrl);
  await import(bundleIsCurrent(bundle) ? bundle.href : new URL("../dist/main.js", binUrl).href);
}

/** True when `bundle` exists and none of the files it was built from is newer than it. */
export function bundleIsCurrent(bundle: URL): boolean {
  try {
    const built = statSync(bundle).mtimeMs;
    const inputs = JSON.parse(readFileSync(new URL(BUNDLE_INPUTS, bundle), "utf8")) as string[];
    return inputs.every((rel) => statSync(new URL(rel, bundle)).mtimeMs <= built);
  } catch {
    // No bundle, no input list, or an input gone: the compiled modules are the program as built.
    return false;
  }
}
