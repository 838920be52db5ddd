/**
 * Test-only helper (not exported from the index): builds a throwaway PKI with the `openssl` CLI — a CA and
 * leaves with SPIFFE URI SANs — in a temp dir, so identity, token and policy tests run on real files.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Files of one generated leaf. */
export interface TestLeaf {
  certFile: string;
  keyFile: string;
}

/** Options of one leaf. */
export interface TestLeafOptions {
  /** subjectAltName value, e.g. `URI:spiffe://example.org/a`; default none. */
  san?: string;
  /** Key format: `pkcs8` (genpkey, default) or `sec1` (ecparam). */
  keyFormat?: "pkcs8" | "sec1";
  /** Curve; default P-256. */
  curve?: "P-256" | "P-384";
}

let serial = 1;

/** A temp-dir PKI; call `remove()` in afterEach/after. */
export class TestPki {
  readonly dir: string;
  readonly caFile: string;
  private readonly caKey: string;

  constructor(caName = "test-ca") {
    this.dir = mkdtempSync(join(tmpdir(), "nsm-ts-pki-"));
    this.caFile = join(this.dir, `${caName}.pem`);
    this.caKey = join(this.dir, `${caName}.key`);
    openssl(this.dir, [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      this.caKey,
      "-out",
      this.caFile,
      "-subj",
      `/CN=${caName}`,
      "-days",
      "2",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
  }

  /**
   * Issues an intermediate CA under this CA and a leaf under the intermediate; the leaf's cert file holds
   * the chain (leaf, then intermediate), as workloads usually get it.
   */
  chainedLeaf(name: string, opts: TestLeafOptions = {}): TestLeaf {
    const icaKey = join(this.dir, `${name}-ica.key`);
    const icaCsr = join(this.dir, `${name}-ica.csr`);
    const icaFile = join(this.dir, `${name}-ica.pem`);
    const icaExt = this.write(`${name}-ica.ext`, "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
    openssl(this.dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", icaKey]);
    openssl(this.dir, ["req", "-new", "-key", icaKey, "-out", icaCsr, "-subj", `/CN=${name}-ica`]);
    openssl(this.dir, [
      "x509",
      "-req",
      "-in",
      icaCsr,
      "-CA",
      this.caFile,
      "-CAkey",
      this.caKey,
      "-set_serial",
      String(serial++),
      "-out",
      icaFile,
      "-days",
      "1",
      "-extfile",
      icaExt,
    ]);
    const leaf = this.issue(name, icaFile, icaKey, opts);
    writeFileSync(leaf.certFile, readFileSync(leaf.certFile, "utf8") + readFileSync(icaFile, "utf8"));
    return leaf;
  }

  /** Issues a leaf signed by this CA. */
  leaf(name: string, opts: TestLeafOptions = {}): TestLeaf {
    return this.issue(name, this.caFile, this.caKey, opts);
  }

  private issue(name: string, caFile: string, caKey: string, opts: TestLeafOptions): TestLeaf {
    const keyFile = join(this.dir, `${name}.key`);
    const certFile = join(this.dir, `${name}.pem`);
    const csr = join(this.dir, `${name}.csr`);
    const ext = join(this.dir, `${name}.ext`);
    const curve = opts.curve ?? "P-256";
    if (opts.keyFormat === "sec1") {
      openssl(this.dir, ["ecparam", "-name", curve === "P-256" ? "prime256v1" : "secp384r1", "-genkey", "-noout", "-out", keyFile]);
    } else {
      openssl(this.dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", `ec_paramgen_curve:${curve}`, "-out", keyFile]);
    }
    openssl(this.dir, ["req", "-new", "-key", keyFile, "-out", csr, "-subj", `/CN=${name}`]);
    const lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth,clientAuth"];
    if (opts.san) lines.push(`subjectAltName=${opts.san}`);
    writeFileSync(ext, `${lines.join("\n")}\n`);
    openssl(this.dir, [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      caFile,
      "-CAkey",
      caKey,
      "-set_serial",
      String(serial++),
      "-out",
      certFile,
      "-days",
      "1",
      "-extfile",
      ext,
    ]);
    return { certFile, keyFile };
  }

  /** Writes an arbitrary file into the PKI dir (for malformed-input tests). */
  write(name: string, content: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, content);
    return p;
  }

  /** Deletes the temp dir. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(cwd: string, args: string[]): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}
