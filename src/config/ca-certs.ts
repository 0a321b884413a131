// Extra CA certificates that image builds trust (TLS-intercepting proxies, corporate or on build machines).
// One precedence everywhere: --ca-cert files, else PERSTACK_EXTRA_CA_CERTS (a path list), else NODE_EXTRA_CA_CERTS
// (the CA Node on the host already trusts). Runs and `images bootstrap` must agree, because the bundle is keyed
// into image tags.
import { readFileSync } from "node:fs";
import { delimiter, resolve } from "node:path";
import { InvalidOptionError } from "../errors.js";

export const EXTRA_CA_CERTS_ENV = "PERSTACK_EXTRA_CA_CERTS";

export function extraCaCertFilesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[EXTRA_CA_CERTS_ENV] ?? env.NODE_EXTRA_CA_CERTS ?? "")
    .split(delimiter)
    .map((file) => file.trim())
    .filter((file) => file !== "");
}

export function caCertFiles(flagFiles: string[], env: NodeJS.ProcessEnv): string[] {
  return flagFiles.length > 0 ? flagFiles : extraCaCertFilesFromEnv(env);
}

/** The PEM text of the files, validated, joined; empty when there are none. */
export function readCaBundle(files: string[], cwd: string): string {
  const texts = files.map((path) => {
    let text: string;
    try {
      text = readFileSync(resolve(cwd, path), "utf8");
    } catch (error) {
      throw new InvalidOptionError(`CA certificate ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? error}); give a PEM file with --ca-cert or ${EXTRA_CA_CERTS_ENV}`);
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) {
      throw new InvalidOptionError(`CA certificate ${path}: not a PEM certificate file`);
    }
    return text.trim();
  });
  return texts.length > 0 ? `${texts.join("\n")}\n` : "";
}
