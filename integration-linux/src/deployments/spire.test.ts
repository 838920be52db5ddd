/**
 * deployments/overlays/spire against the base manifests and the programs' config schemas (see spire.ts): the real
 * overlay is clean, its registration example names pods so the registry recognises the nsmgrs, and broken copies of
 * a patch are caught.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { expect } from "chai";
import { type ConfigSchemaLike, loadManifests, type ManifestFile, type Obj, type ProgramInfo, SERVED_SERVICES } from "./manifests.js";
import { checkSpireOverlay } from "./spire.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

async function loadPrograms(): Promise<ProgramInfo[]> {
  const out: ProgramInfo[] = [];
  for (const [container, served] of Object.entries(SERVED_SERVICES)) {
    const mod = (await import(pathToFileURL(join(repo, `cmd-${container}`, "dist", "config.js")).href)) as { config: ConfigSchemaLike };
    out.push({ container, image: `ghcr.io/nsm-ts/cmd-${container}`, config: mod.config, served });
  }
  return out;
}

describe("deployments/overlays/spire", () => {
  let programs: ProgramInfo[];
  let files: ManifestFile[];

  before(async () => {
    programs = await loadPrograms();
    const loaded = loadManifests(join(repo, "deployments"));
    expect(loaded.problems).to.deep.equal([]);
    files = loaded.files;
  });

  /** The files with the nsmgr patch's container replaced by `edit` of it. */
  function withNsmgrPatch(edit: (c: Obj, pod: Obj) => void): ManifestFile[] {
    return files.map((f) => {
      if (f.path !== "overlays/spire/nsmgr-spire.yaml") return f;
      const docs = structuredClone(f.docs);
      const pod = (((docs[0] as Obj).spec as Obj).template as Obj).spec as Obj;
      edit((pod.containers as Obj[])[0] as Obj, pod);
      return { ...f, docs };
    });
  }

  it("patches registry, nsmgr, forwarder and the examples (vL3 too): agent socket mounted read-only, SPIFFE_ENDPOINT_SOCKET accepted", () => {
    expect(checkSpireOverlay(files, programs)).to.deep.equal([]);
    const nsmgr = programs.find((p) => p.container === "nsmgr");
    const cfg = nsmgr?.config.parse({ SPIFFE_ENDPOINT_SOCKET: "unix:///run/spire/sockets/agent.sock" }) as { spiffeEndpointSocket: string };
    expect(cfg.spiffeEndpointSocket).to.equal("unix:///run/spire/sockets/agent.sock");
  });

  it("registers the pods of nsm-system, nsm-examples, nsm-vl3 and nsm-services with IDs ending in the pod name (nsmgr-… for the nsmgrs)", () => {
    const id = files.flatMap((f) => f.docs).find((d) => d.kind === "ClusterSPIFFEID") as Obj;
    const spec = id.spec as Obj;
    expect(String(spec.spiffeIDTemplate)).to.match(/\/pod\/\{\{ \.PodMeta\.Name \}\}"?$/);
    const values = ((spec.namespaceSelector as Obj).matchExpressions as Obj[]).flatMap((e) => e.values as string[]);
    expect(values).to.have.members(["nsm-system", "nsm-examples", "nsm-vl3", "nsm-services"]);
    const nsmgrDaemonSet = files.flatMap((f) => f.docs).find((d) => d.kind === "DaemonSet" && (d.metadata as Obj).name === "nsmgr");
    expect(nsmgrDaemonSet, "pods named nsmgr-<suffix>").to.not.equal(undefined);
  });

  it("catches a socket URL the program rejects, a missing mount, a certificate file beside it and an unpatched workload", () => {
    const tcp = checkSpireOverlay(
      withNsmgrPatch((c) => {
        (c.env as Obj[])[0] = { name: "SPIFFE_ENDPOINT_SOCKET", value: "tcp://127.0.0.1:8081" };
      }),
      programs,
    );
    expect(tcp.join("\n")).to.contain("would reject its env").and.contain("SPIFFE_ENDPOINT_SOCKET");
    const unmounted = checkSpireOverlay(
      withNsmgrPatch((c) => {
        c.volumeMounts = [];
      }),
      programs,
    );
    expect(unmounted.join("\n")).to.contain("no volumeMount at /run/spire/sockets");
    const wrongVolume = checkSpireOverlay(
      withNsmgrPatch((_c, pod) => {
        pod.volumes = [{ name: "spire-agent-socket", emptyDir: {} }];
      }),
      programs,
    );
    expect(wrongVolume.join("\n")).to.contain("is neither hostPath /run/spire/sockets nor the csi.spiffe.io driver");
    const files2 = withNsmgrPatch((c) => {
      (c.env as Obj[]).push({ name: "NSM_TLS_CERT_FILE", value: "/etc/tls/cert.pem" });
    });
    expect(checkSpireOverlay(files2, programs).join("\n")).to.contain("NSM_TLS_CERT_FILE is set beside SPIFFE_ENDPOINT_SOCKET");
    const noForwarder = files.filter((f) => f.path !== "overlays/spire/forwarder-spire.yaml");
    expect(checkSpireOverlay(noForwarder, programs)).to.deep.equal([
      "overlays/spire/: DaemonSet/forwarder is not patched: it would run without SPIRE",
    ]);
  });
});
