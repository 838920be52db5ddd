/**
 * Static checks of the kustomize manifests in deployments/: each returns a list of problems (empty = fine), so
 * the test can assert the real tree is clean and that broken copies are caught. What is checked and why:
 * env names are exactly what the programs read (their config schemas), values parse with those schemas,
 * ports agree across NSM_LISTEN_ON / containerPort / probes / Services, probes ask for services the program
 * really serves, images are the program's own with one tag, and kustomizations list only files that exist.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

/** A parsed YAML mapping (manifests are data, so fields are read defensively). */
export type Obj = Record<string, unknown>;

/** The part of a program's config schema the checks use (`cmd-<program>/dist/config.js` exports `config`). */
export interface ConfigSchemaLike {
  names(): string[];
  vars: Record<string, { name: string; default?: string | undefined }>;
  parse(env: Record<string, string | undefined>): unknown;
}

/** What the checks know about one program: its schema, image and the gRPC services it serves. */
export interface ProgramInfo {
  /** Container name used for it in the manifests (`registry`, `nsmgr`, …). */
  container: string;
  /** Image repository, without a tag (the tag comes from kustomize `images:`). */
  image: string;
  config: ConfigSchemaLike;
  /** gRPC service names it marks SERVING in grpc.health.v1 (empty: serves nothing, so no gRPC probe). */
  served: readonly string[];
}

/**
 * Env names Kubernetes uses only for `$(NAME)` expansion in other values (the program never reads them). Each
 * must be referenced by a later env value of the same container, so it cannot linger unused.
 */
export const EXPANSION_ONLY: ReadonlySet<string> = new Set(["POD_IP"]);

/**
 * Program (container name) → the gRPC services its server registers, each marked SERVING in grpc.health.v1.
 * nsmgr also serves both registry services (its registry proxy); nsc serves nothing. served.test.ts asks the
 * running programs, so this table cannot drift from them.
 */
export const SERVED_SERVICES: Readonly<Record<string, readonly string[]>> = {
  registry: ["registry.NetworkServiceRegistry", "registry.NetworkServiceEndpointRegistry"],
  nsmgr: [
    "networkservice.NetworkService",
    "connection.MonitorConnection",
    "registry.NetworkServiceRegistry",
    "registry.NetworkServiceEndpointRegistry",
  ],
  "nsmgr-proxy": [
    "networkservice.NetworkService",
    "connection.MonitorConnection",
    "registry.NetworkServiceRegistry",
    "registry.NetworkServiceEndpointRegistry",
  ],
  forwarder: ["networkservice.NetworkService", "connection.MonitorConnection"],
  endpoint: ["networkservice.NetworkService", "connection.MonitorConnection"],
  nsc: [],
  "nse-vl3": ["networkservice.NetworkService", "connection.MonitorConnection"],
  "traffic-controller": ["nsmts.intents.v1.ClusterService", "nsmts.intents.v1.TrafficGroupService", "nsmts.intents.v1.IntentService"],
};

/** Containers that are not nsm-ts programs (left to their own images' documentation). */
export const EXTERNAL_CONTAINERS: ReadonlySet<string> = new Set(["etcd", "names-server", "shell", "curl"]);

/** Sample values for downward-API fields, so values such as `tcp://$(POD_IP):5003` can be parsed. */
const FIELD_SAMPLES: Record<string, string> = {
  "status.podIP": "198.51.100.7",
  "spec.nodeName": "node-1",
  "metadata.name": "pod-1",
  "metadata.namespace": "nsm-system",
};

/** One YAML file: its path relative to the deployments root and its documents as plain data. */
export interface ManifestFile {
  path: string;
  docs: Obj[];
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const objs = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const at = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((cur, k) => (isObj(cur) ? cur[k] : undefined), o);

/** Levenshtein distance, for "did you mean" on misspelled env names. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** Reads every *.yaml under `root`; YAML syntax errors are returned as problems. */
export function loadManifests(root: string): { files: ManifestFile[]; problems: string[] } {
  const files: ManifestFile[] = [];
  const problems: string[] = [];
  for (const rel of readdirSync(root, { recursive: true }).map(String).sort()) {
    if (!rel.endsWith(".yaml") && !rel.endsWith(".yml")) continue;
    const docs: Obj[] = [];
    for (const doc of parseAllDocuments(readFileSync(join(root, rel), "utf8"))) {
      for (const e of doc.errors) problems.push(`${rel}: YAML: ${e.message}`);
      const v: unknown = doc.toJS();
      if (v === null || v === undefined) continue;
      if (!isObj(v)) problems.push(`${rel}: a document is not a mapping`);
      else docs.push(v);
    }
    files.push({ path: rel, docs });
  }
  return { files, problems };
}

/** The pod templates' containers of a workload document (Deployment, DaemonSet, StatefulSet, or a patch of one). */
function containersOf(doc: Obj): { containers: Obj[]; init: Obj[]; pod: Obj | undefined } {
  const pod = at(doc, "spec", "template", "spec");
  return { containers: objs(at(pod, "containers")), init: objs(at(pod, "initContainers")), pod: isObj(pod) ? pod : undefined };
}

/** Port numbers of the tcp URLs in a comma-separated NSM_LISTEN_ON value. */
function tcpPorts(listenOn: string): number[] {
  return listenOn
    .split(",")
    .map((u) => /^tcp:\/\/.*:(\d+)$/.exec(u.trim()))
    .flatMap((m) => (m?.[1] ? [Number(m[1])] : []));
}

/**
 * Checks one container of a program: env names and values against the schema, `$(…)` references, image,
 * ports against NSM_LISTEN_ON and NSM_METRICS_LISTEN_ON, probes against the served services, and the pod's
 * `prometheus.io/port` annotation (read from `doc`, the workload) against the metrics port. `isPatch` relaxes what a strategic
 * merge patch need not repeat (image, ports, probes).
 */
export function checkContainer(where: string, c: Obj, program: ProgramInfo, isPatch = false, doc: Obj = {}): string[] {
  const problems: string[] = [];
  const name = str(c.name) ?? "?";
  const names = program.config.names();
  const env: Record<string, string> = {};
  const defined: string[] = [];
  const referenced = new Set<string>();
  for (const e of objs(c.env)) {
    const n = str(e.name) ?? "";
    if (!names.includes(n) && !EXPANSION_ONLY.has(n)) {
      const near = names.filter((k) => distance(k, n) <= 3).sort((a, b) => distance(a, n) - distance(b, n));
      problems.push(`${where}: ${name}: env ${n} is not read by ${program.image}${near[0] ? ` (did you mean ${near[0]}?)` : ""}`);
    }
    if (defined.includes(n)) problems.push(`${where}: ${name}: env ${n} is set twice`);
    let value = str(e.value);
    const field = str(at(e, "valueFrom", "fieldRef", "fieldPath"));
    if (value === undefined && field !== undefined) value = FIELD_SAMPLES[field] ?? "x";
    if (value === undefined) value = "x";
    // Kubernetes expands $(NAME) only from variables defined earlier in the same container.
    value = value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, ref: string) => {
      referenced.add(ref);
      if (!defined.includes(ref)) problems.push(`${where}: ${name}: env ${n} refers to $(${ref}), which is not defined before it`);
      return env[ref] ?? "x";
    });
    defined.push(n);
    env[n] = value;
  }
  for (const n of defined) {
    if (EXPANSION_ONLY.has(n) && !referenced.has(n))
      problems.push(`${where}: ${name}: env ${n} is only for $(${n}) expansion but nothing uses it`);
  }
  if (!isPatch) {
    try {
      program.config.parse(env);
    } catch (err) {
      problems.push(`${where}: ${name}: the program would reject its env: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const image = str(c.image);
  if (image !== undefined && image !== program.image)
    problems.push(`${where}: ${name}: image ${image}, expected ${program.image} (tag via kustomize images:)`);
  if (image === undefined && !isPatch) problems.push(`${where}: ${name}: no image`);
  if (isPatch) return problems;

  const listenVar = Object.values(program.config.vars).find((v) => v.name === "NSM_LISTEN_ON");
  const listenOn = env.NSM_LISTEN_ON ?? listenVar?.default;
  const listenPorts = listenOn === undefined ? [] : tcpPorts(listenOn);
  const metricsPorts = env.NSM_METRICS_LISTEN_ON === undefined ? [] : tcpPorts(env.NSM_METRICS_LISTEN_ON);
  // A second listener of the same API with another protocol (cmd-traffic-controller's Connect HTTP).
  const httpPorts = env.NSM_HTTP_LISTEN_ON === undefined || env.NSM_HTTP_LISTEN_ON === "off" ? [] : tcpPorts(env.NSM_HTTP_LISTEN_ON);
  const containerPorts = objs(c.ports).map((p) => p.containerPort);
  for (const p of httpPorts) {
    if (!containerPorts.includes(p)) problems.push(`${where}: ${name}: NSM_HTTP_LISTEN_ON port ${p} has no containerPort`);
  }
  for (const p of listenPorts) {
    if (!containerPorts.includes(p)) problems.push(`${where}: ${name}: NSM_LISTEN_ON port ${p} has no containerPort`);
  }
  for (const p of metricsPorts) {
    if (!containerPorts.includes(p)) problems.push(`${where}: ${name}: NSM_METRICS_LISTEN_ON port ${p} has no containerPort`);
    if (listenPorts.includes(p)) problems.push(`${where}: ${name}: NSM_METRICS_LISTEN_ON port ${p} is also a gRPC port`);
  }
  for (const p of containerPorts) {
    if (typeof p !== "number" || (!listenPorts.includes(p) && !metricsPorts.includes(p) && !httpPorts.includes(p))) {
      problems.push(
        `${where}: ${name}: containerPort ${String(p)} is neither an NSM_LISTEN_ON, NSM_HTTP_LISTEN_ON nor the NSM_METRICS_LISTEN_ON tcp port`,
      );
    }
  }
  // Prometheus scrapes what the pod announces: the annotation must name the metrics port.
  const scrapePort = at(doc, "spec", "template", "metadata", "annotations", "prometheus.io/port");
  if (scrapePort !== undefined && !metricsPorts.includes(Number(scrapePort))) {
    problems.push(`${where}: ${name}: prometheus.io/port ${String(scrapePort)} is not the NSM_METRICS_LISTEN_ON port`);
  }
  for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
    const probe = c[kind];
    if (probe === undefined) {
      if (kind !== "startupProbe" && program.served.length > 0) problems.push(`${where}: ${name}: no ${kind}`);
      continue;
    }
    const grpc = at(probe, "grpc");
    if (!isObj(grpc)) {
      problems.push(`${where}: ${name}: ${kind} is not a gRPC health probe`);
      continue;
    }
    const port = grpc.port;
    if (typeof port !== "number" || !listenPorts.includes(port))
      problems.push(`${where}: ${name}: ${kind} port ${String(port)} is not a tcp port the program listens on`);
    const svc = str(grpc.service);
    if (svc === undefined || !program.served.includes(svc)) {
      problems.push(
        `${where}: ${name}: ${kind} asks for ${String(svc)}, which ${program.image} does not serve (${program.served.join(", ") || "nothing"})`,
      );
    }
  }
  return problems;
}

/** Env, images, ports and probes of every container of every workload in `files`. */
export function checkWorkloads(
  files: readonly ManifestFile[],
  programs: readonly ProgramInfo[],
  patchFiles: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  for (const f of files) {
    for (const doc of f.docs) {
      const { containers, init } = containersOf(doc);
      const where = `${f.path} ${String(doc.kind)}/${String(at(doc, "metadata", "name"))}`;
      for (const c of containers) {
        const cname = str(c.name) ?? "";
        const program = programs.find((p) => p.container === cname);
        if (program) problems.push(...checkContainer(where, c, program, patchFiles.has(f.path), doc));
        else if (!EXTERNAL_CONTAINERS.has(cname))
          problems.push(`${where}: container ${cname} is neither an nsm-ts program nor a known external one`);
        else if (str(c.image)?.startsWith("ghcr.io/nsm-ts/")) problems.push(`${where}: external container ${cname} uses an nsm-ts image`);
      }
      for (const c of init) {
        // Init containers may borrow a program's image for a shell step, but then they get no program env.
        const image = str(c.image);
        if (image !== undefined && !programs.some((p) => p.image === image))
          problems.push(`${where}: init container image ${image} is not an nsm-ts image`);
        if (objs(c.env).length > 0) problems.push(`${where}: init container ${String(c.name)} sets env`);
      }
    }
  }
  return problems;
}

/** Services: each selects workloads in the same files whose containers, together, expose every targetPort. */
export function checkServices(files: readonly ManifestFile[]): string[] {
  const problems: string[] = [];
  const docs = files.flatMap((f) => f.docs.map((d) => ({ path: f.path, doc: d })));
  for (const { path, doc } of docs) {
    if (doc.kind !== "Service") continue;
    const svc = String(at(doc, "metadata", "name"));
    const selector = at(doc, "spec", "selector");
    const matches = docs.filter(({ doc: w }) => {
      const labels = at(w, "spec", "template", "metadata", "labels");
      return isObj(selector) && isObj(labels) && w.kind !== "Service" && Object.entries(selector).every(([k, v]) => labels[k] === v);
    });
    if (matches.length === 0) {
      problems.push(`${path}: Service/${svc} selects no workload`);
      continue;
    }
    // Over every selected workload together: an overlay's patch may add the container port its Service patch adds.
    const exposed = matches.flatMap(({ doc: w }) => containersOf(w).containers.flatMap((c) => objs(c.ports)));
    const names = [...new Set(matches.map(({ doc: w }) => String(at(w, "metadata", "name"))))].join(", ");
    for (const port of objs(at(doc, "spec", "ports"))) {
      const target = port.targetPort ?? port.port;
      if (!exposed.some((p) => p.containerPort === target || p.name === target)) {
        problems.push(`${path}: Service/${svc} targetPort ${String(target)} is no containerPort of ${names}`);
      }
    }
  }
  return problems;
}

/** A kustomization found under the deployments root. */
interface Kustomization {
  dir: string;
  body: Obj;
}

/**
 * Kustomizations: every resource and patch exists (a file, or a directory with a kustomization.yaml), every
 * manifest file is used by some kustomization, every nsm-ts image used under a kustomization with `images:` is
 * listed there, and all listed tags are the same.
 */
export function checkKustomizations(root: string, files: readonly ManifestFile[], programs: readonly ProgramInfo[]): string[] {
  const problems: string[] = [];
  const ks: Kustomization[] = [];
  for (const f of files) {
    if (!/(^|\/)kustomization\.ya?ml$/.test(f.path)) continue;
    const body = f.docs[0];
    if (body) ks.push({ dir: dirname(f.path), body });
  }
  const used = new Set<string>(ks.map((k) => join(k.dir, "kustomization.yaml")));
  const filesOf = new Map<string, string[]>(); // kustomization dir → manifest files it renders (transitively)
  const resolveK = (dir: string, seen: Set<string>): string[] => {
    if (seen.has(dir)) return [];
    seen.add(dir);
    const k = ks.find((x) => x.dir === dir);
    if (!k) return [];
    const out: string[] = [];
    const entries = [
      ...(Array.isArray(k.body.resources) ? (k.body.resources as unknown[]).map(String) : []),
      ...objs(k.body.patches).flatMap((p) => (typeof p.path === "string" ? [p.path] : [])),
    ];
    for (const entry of entries) {
      const full = resolve(root, dir, entry);
      const rel = relative(root, full);
      if (!existsSync(full)) {
        problems.push(`${join(dir, "kustomization.yaml")}: ${entry} does not exist`);
      } else if (statSync(full).isDirectory()) {
        if (!existsSync(join(full, "kustomization.yaml")))
          problems.push(`${join(dir, "kustomization.yaml")}: ${entry} is a directory without kustomization.yaml`);
        else out.push(...resolveK(rel === "" ? "." : rel, seen));
      } else {
        used.add(rel);
        out.push(rel);
      }
    }
    return out;
  };
  for (const k of ks) filesOf.set(k.dir, resolveK(k.dir, new Set()));
  for (const f of files) if (!used.has(f.path)) problems.push(`${f.path}: not listed by any kustomization`);

  const tags = new Set<string>();
  for (const k of ks) {
    const images = objs(k.body.images);
    for (const i of images) {
      const tag = str(i.newTag);
      if (tag === undefined) problems.push(`${join(k.dir, "kustomization.yaml")}: image ${String(i.name)} has no newTag`);
      else tags.add(tag);
      if (!programs.some((p) => p.image === i.name))
        problems.push(`${join(k.dir, "kustomization.yaml")}: images: ${String(i.name)} is no nsm-ts program image`);
    }
    if (images.length === 0) continue;
    const rendered = new Set(filesOf.get(k.dir) ?? []);
    for (const f of files.filter((x) => rendered.has(x.path))) {
      for (const doc of f.docs) {
        const { containers, init } = containersOf(doc);
        for (const c of [...containers, ...init]) {
          const image = str(c.image);
          if (image?.startsWith("ghcr.io/nsm-ts/") && !images.some((i) => i.name === image)) {
            problems.push(`${join(k.dir, "kustomization.yaml")}: renders ${image} (${f.path}) without a tag in images:`);
          }
        }
      }
    }
  }
  if (tags.size > 1) problems.push(`kustomizations use different image tags: ${[...tags].join(", ")}`);
  return problems;
}

/** Files that kustomizations use as patches (checked with the relaxed patch rules). */
export function patchFiles(files: readonly ManifestFile[]): Set<string> {
  const out = new Set<string>();
  for (const f of files) {
    if (!/(^|\/)kustomization\.ya?ml$/.test(f.path)) continue;
    for (const p of objs(f.docs[0]?.patches)) {
      if (typeof p.path === "string") out.add(join(dirname(f.path), p.path));
    }
  }
  return out;
}
