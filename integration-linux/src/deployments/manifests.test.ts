/**
 * The manifests in deployments/ against the programs they run: see manifests.ts for what each check means.
 * The schemas come from the compiled programs (`cmd-<program>/dist/config.js`), so a renamed or removed variable
 * breaks this test, not a cluster.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { expect } from "chai";
import {
  type ConfigSchemaLike,
  checkContainer,
  checkKustomizations,
  checkServices,
  checkWorkloads,
  loadManifests,
  type ManifestFile,
  type Obj,
  type ProgramInfo,
  patchFiles,
  SERVED_SERVICES,
} from "./manifests.js";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const root = join(repo, "deployments");

async function loadPrograms(): Promise<ProgramInfo[]> {
  const out: ProgramInfo[] = [];
  for (const [container, served] of Object.entries(SERVED_SERVICES)) {
    const mod = (await import(pathToFileURL(join(repo, `cmd-${container}`, "dist", "config.js")).href)) as { config: ConfigSchemaLike };
    out.push({ container, image: `ghcr.io/nsm-ts/cmd-${container}`, config: mod.config, served });
  }
  return out;
}

const envOf = (files: readonly ManifestFile[], container: string): Map<string, string> => {
  const out = new Map<string, string>();
  for (const f of files) {
    if (f.path.includes("overlays/")) continue;
    for (const d of f.docs) {
      const spec = (d.spec as Obj | undefined)?.template as Obj | undefined;
      const containers = ((spec?.spec as Obj | undefined)?.containers ?? []) as Obj[];
      for (const c of containers.filter((x) => x.name === container)) {
        for (const e of (c.env ?? []) as Obj[]) if (typeof e.value === "string") out.set(String(e.name), e.value);
      }
    }
  }
  return out;
};

describe("deployments/ manifests", () => {
  let programs: ProgramInfo[];
  let files: ManifestFile[];

  before(async () => {
    programs = await loadPrograms();
    const loaded = loadManifests(root);
    expect(loaded.problems, "YAML errors").to.deep.equal([]);
    files = loaded.files;
  });

  it("covers the basic setup, the etcd and spire overlays and the examples", () => {
    const kinds = files.flatMap((f) => f.docs.map((d) => `${String(d.kind)}/${String((d.metadata as Obj | undefined)?.name)}`));
    expect(kinds).to.include.members([
      "Namespace/nsm-system",
      "Deployment/registry",
      "Service/registry",
      "DaemonSet/nsmgr",
      "DaemonSet/forwarder",
      "Deployment/nse-icmp-responder",
      "Deployment/nsc-kernel",
      "Deployment/etcd",
      "ClusterSPIFFEID/nsm-ts-workloads",
    ]);
  });

  it("sets only env the programs read, with values they accept, and ports and probes that agree", () => {
    expect(checkWorkloads(files, programs, patchFiles(files))).to.deep.equal([]);
  });

  it("has Services whose targetPorts are container ports of the pods they select", () => {
    expect(checkServices(files)).to.deep.equal([]);
  });

  it("has kustomizations that list existing files only, use every manifest, and tag every image once", () => {
    expect(checkKustomizations(root, files, programs)).to.deep.equal([]);
  });

  it("wires the programs to each other: node socket, registry Service, etcd Service", () => {
    const nsmgrListen = envOf(files, "nsmgr").get("NSM_LISTEN_ON") ?? "";
    const socket = nsmgrListen.split(",").find((u) => u.startsWith("unix://"));
    expect(socket).to.equal("unix:///var/lib/networkservicemesh/nsm.io.sock");
    for (const c of ["forwarder", "endpoint", "nsc"]) expect(envOf(files, c).get("NSM_CONNECT_TO"), c).to.equal(socket);
    expect(envOf(files, "nsmgr").get("NSM_REGISTRY_URL")).to.equal("tcp://registry.nsm-system.svc.cluster.local:5002");
    const overlay = files.find((f) => f.path === "overlays/etcd/registry-etcd.yaml");
    expect(JSON.stringify(overlay?.docs)).to.contain("etcd://etcd.nsm-system.svc.cluster.local:2379");
    // Every pod that talks to the nsmgr mounts the same hostPath at the socket's directory (patches add to a base pod).
    const patches = patchFiles(files);
    for (const f of files.filter((x) => !patches.has(x.path))) {
      for (const d of f.docs) {
        const pod = ((d.spec as Obj | undefined)?.template as Obj | undefined)?.spec as Obj | undefined;
        const containers = (pod?.containers ?? []) as Obj[];
        if (!containers.some((c) => ["nsmgr", "forwarder", "endpoint", "nsc"].includes(String(c.name)))) continue;
        const volumes = (pod?.volumes ?? []) as Obj[];
        expect(
          volumes.map((v) => (v.hostPath as Obj | undefined)?.path),
          f.path,
        ).to.include("/var/lib/networkservicemesh");
      }
    }
  });

  describe("catches broken manifests", () => {
    const nsmgr = (): ProgramInfo => {
      const p = programs.find((x) => x.container === "nsmgr");
      if (!p) throw new Error("no nsmgr");
      return p;
    };
    const container = (env: Obj[], extra: Obj = {}): Obj => ({
      name: "nsmgr",
      image: "ghcr.io/nsm-ts/cmd-nsmgr",
      env,
      ports: [{ containerPort: 5001 }],
      readinessProbe: { grpc: { port: 5001, service: "networkservice.NetworkService" } },
      livenessProbe: { grpc: { port: 5001, service: "networkservice.NetworkService" } },
      ...extra,
    });

    it("accepts the reference container", () => {
      expect(checkContainer("t", container([{ name: "NSM_REGISTRY_URL", value: "tcp://registry:5002" }]), nsmgr())).to.deep.equal([]);
    });

    it("a misspelled env name, with a suggestion", () => {
      const p = checkContainer("t", container([{ name: "NSM_REGISTY_URL", value: "tcp://registry:5002" }]), nsmgr());
      expect(p).to.have.length(1);
      expect(p[0]).to.contain("NSM_REGISTY_URL is not read").and.contain("did you mean NSM_REGISTRY_URL");
    });

    it("a value the program rejects", () => {
      const p = checkContainer("t", container([{ name: "NSM_REQUEST_TIMEOUT", value: "soon" }]), nsmgr());
      expect(p.join("\n")).to.contain("would reject its env").and.contain("NSM_REQUEST_TIMEOUT");
    });

    it("a containerPort that is not the listen port, and a probe on it", () => {
      const p = checkContainer(
        "t",
        container([{ name: "NSM_LISTEN_ON", value: "tcp://:5009" }], {
          readinessProbe: { grpc: { port: 5001, service: "networkservice.NetworkService" } },
        }),
        nsmgr(),
      );
      expect(p.join("\n"))
        .to.contain("port 5009 has no containerPort")
        .and.contain("containerPort 5001 is neither")
        .and.contain("readinessProbe port 5001");
    });

    it("a metrics port without a containerPort, and a scrape annotation on another port", () => {
      const doc = { spec: { template: { metadata: { annotations: { "prometheus.io/port": "9100" } } } } };
      const p = checkContainer("t", container([{ name: "NSM_METRICS_LISTEN_ON", value: "tcp://:9464" }]), nsmgr(), false, doc);
      expect(p).to.deep.equal([
        "t: nsmgr: NSM_METRICS_LISTEN_ON port 9464 has no containerPort",
        "t: nsmgr: prometheus.io/port 9100 is not the NSM_METRICS_LISTEN_ON port",
      ]);
    });

    it("a probe for a service the program does not serve, and a missing probe", () => {
      const p = checkContainer(
        "t",
        container([], { readinessProbe: { grpc: { port: 5001, service: "ipam.IPAM" } }, livenessProbe: undefined }),
        nsmgr(),
      );
      expect(p.join("\n")).to.contain("asks for ipam.IPAM").and.contain("no livenessProbe");
    });

    it("a $(VAR) used before it is defined, and a wrong image", () => {
      const p = checkContainer(
        "t",
        container(
          [
            { name: "NSM_NAME", value: "nsmgr-$(NODE_NAME)" },
            { name: "NODE_NAME", value: "n" },
          ],
          { image: "ghcr.io/nsm-ts/cmd-nsmgr:latest" },
        ),
        nsmgr(),
      );
      expect(p.join("\n"))
        .to.contain("refers to $(NODE_NAME), which is not defined before it")
        .and.contain("image ghcr.io/nsm-ts/cmd-nsmgr:latest");
    });

    it("a Service targetPort no container exposes", () => {
      const files2: ManifestFile[] = [
        {
          path: "x.yaml",
          docs: [
            {
              kind: "Deployment",
              metadata: { name: "r" },
              spec: {
                template: {
                  metadata: { labels: { app: "r" } },
                  spec: { containers: [{ name: "registry", ports: [{ containerPort: 5002 }] }] },
                },
              },
            },
            { kind: "Service", metadata: { name: "r" }, spec: { selector: { app: "r" }, ports: [{ port: 5002, targetPort: 5003 }] } },
          ],
        },
      ];
      expect(checkServices(files2)).to.deep.equal(["x.yaml: Service/r targetPort 5003 is no containerPort of r"]);
    });
  });
});
