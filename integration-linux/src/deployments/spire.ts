/**
 * Static checks of the SPIRE overlay (deployments/overlays/spire): its strategic merge patches are applied by hand
 * to the base workloads they name (kustomize is not available here; env merges by name, volumes by name, mounts by
 * path, as kustomize does), and the result is checked like a base manifest plus what SPIRE needs: every nsm-ts
 * workload the overlay's bases render is patched, SPIFFE_ENDPOINT_SOCKET parses with the program's own parser, the
 * socket's directory is mounted from the SPIRE agent (hostPath /run/spire/sockets or the csi.spiffe.io driver), and
 * no certificate-file identity (NSM_TLS_*) is left beside it.
 */
import { posix } from "node:path";
import { checkContainer, type ManifestFile, type Obj, type ProgramInfo, patchFiles } from "./manifests.js";

/** Where the overlay lives, relative to the deployments root. */
export const SPIRE_OVERLAY = "overlays/spire/";

/** The hostPath of the SPIRE agent socket directory on the nodes. */
export const SPIRE_SOCKET_HOST_DIR = "/run/spire/sockets";

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const objs = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);
const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((cur, k) => (isObj(cur) ? cur[k] : undefined), o);
const keyOf = (d: Obj): string => `${String(d.kind)}/${String(at(d, "metadata", "name"))}`;

/** Merges list entries by `key`: entries of `patch` replace those of `base` with the same key, new ones are appended. */
function mergeBy(base: unknown, patch: unknown, key: string): Obj[] {
  const out = objs(base).map((e) => ({ ...e }));
  for (const p of objs(patch)) {
    const i = out.findIndex((e) => e[key] === p[key]);
    if (i >= 0) out[i] = { ...out[i], ...p };
    else out.push(p);
  }
  return out;
}

/** The base workloads (documents outside overlays/) that run an nsm-ts program. */
function programWorkloads(files: readonly ManifestFile[], programs: readonly ProgramInfo[]): Map<string, Obj> {
  const out = new Map<string, Obj>();
  for (const f of files) {
    if (f.path.startsWith("overlays/")) continue;
    for (const d of f.docs) {
      const containers = objs(at(d, "spec", "template", "spec", "containers"));
      if (containers.some((c) => programs.some((p) => p.container === c.name))) out.set(keyOf(d), d);
    }
  }
  return out;
}

/** The base workload with one patch applied to its pod: containers by name (env by name, mounts by path), volumes by name. */
export function applyPodPatch(base: Obj, patch: Obj): Obj {
  const pod = (at(base, "spec", "template", "spec") ?? {}) as Obj;
  const ppod = (at(patch, "spec", "template", "spec") ?? {}) as Obj;
  const containers = objs(pod.containers).map((c) => {
    const pc = objs(ppod.containers).find((x) => x.name === c.name);
    if (!pc) return c;
    return { ...c, env: mergeBy(c.env, pc.env, "name"), volumeMounts: mergeBy(c.volumeMounts, pc.volumeMounts, "mountPath") };
  });
  const template = {
    ...(at(base, "spec", "template") as Obj),
    spec: { ...pod, containers, volumes: mergeBy(pod.volumes, ppod.volumes, "name") },
  };
  return { ...base, spec: { ...(base.spec as Obj), template } };
}

/** SPIRE-specific checks of one patched container in its patched pod. */
function checkSpireContainer(where: string, c: Obj, pod: Obj): string[] {
  const problems: string[] = [];
  const env = objs(c.env);
  const socket = env.find((e) => e.name === "SPIFFE_ENDPOINT_SOCKET")?.value;
  if (typeof socket !== "string") return [`${where}: no SPIFFE_ENDPOINT_SOCKET value`];
  for (const e of env) {
    if (String(e.name).startsWith("NSM_TLS_")) problems.push(`${where}: ${String(e.name)} is set beside SPIFFE_ENDPOINT_SOCKET`);
  }
  const path = socket.replace(/^unix:(\/\/)?/, "");
  const dir = posix.dirname(path);
  const mount = objs(c.volumeMounts).find((m) => m.mountPath === dir);
  if (!mount) return [...problems, `${where}: no volumeMount at ${dir}, the directory of SPIFFE_ENDPOINT_SOCKET`];
  const volume = objs(pod.volumes).find((v) => v.name === mount.name);
  const host = at(volume, "hostPath", "path");
  const csi = at(volume, "csi", "driver");
  if (host !== SPIRE_SOCKET_HOST_DIR && csi !== "csi.spiffe.io") {
    problems.push(
      `${where}: volume ${String(mount.name)} at ${dir} is neither hostPath ${SPIRE_SOCKET_HOST_DIR} nor the csi.spiffe.io driver`,
    );
  }
  if (mount.readOnly !== true) problems.push(`${where}: the SPIRE agent socket is mounted writable`);
  return problems;
}

/**
 * The overlay against the base: its patches (overlays/spire/, its examples/ and examples/vl3/) cover every nsm-ts
 * workload of the base and the examples, and each patched workload passes the base checks (env parses with the
 * program's schema, ports, probes) and the SPIRE checks.
 */
export function checkSpireOverlay(files: readonly ManifestFile[], programs: readonly ProgramInfo[]): string[] {
  const problems: string[] = [];
  const patches = patchFiles(files);
  const base = programWorkloads(files, programs);
  const patched = new Set<string>();
  for (const f of files.filter((x) => x.path.startsWith(SPIRE_OVERLAY) && patches.has(x.path))) {
    for (const p of f.docs) {
      const key = keyOf(p);
      const where = `${f.path} ${key}`;
      const workload = base.get(key);
      if (!workload) {
        problems.push(`${where}: patches no nsm-ts workload of the base`);
        continue;
      }
      patched.add(key);
      const merged = applyPodPatch(workload, p);
      const pod = at(merged, "spec", "template", "spec") as Obj;
      for (const pc of objs(at(p, "spec", "template", "spec", "containers"))) {
        const c = objs(pod.containers).find((x) => x.name === pc.name);
        const program = programs.find((x) => x.container === pc.name);
        if (!c || !program) {
          problems.push(`${where}: container ${String(pc.name)} is no program container of ${key}`);
          continue;
        }
        problems.push(...checkContainer(where, c, program, false, merged), ...checkSpireContainer(`${where}: ${String(c.name)}`, c, pod));
      }
    }
  }
  for (const key of base.keys())
    if (!patched.has(key)) problems.push(`${SPIRE_OVERLAY}: ${key} is not patched: it would run without SPIRE`);
  return problems;
}
