// Real temp trees and hand-made tar archives for the workspace copy tests. Archives are encoded here byte by byte
// (not with tar-stream's packer) so tests can write what a hostile or broken archive would: file-type bits in
// modes, names with "..", hardlinks to anywhere, devices, lying sizes.
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import tarFs from "tar-fs";
import tar from "tar-stream";

export function tempDir(prefix = "perstack-ws-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function makeDirs(...paths: string[]): void {
  for (const path of paths) mkdirSync(path, { recursive: true });
}

export interface ListedEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  ino: number;
  content?: string;
  linkTarget?: string;
}

/** Everything about a tree a rollback must restore: types, modes, owners, inodes, contents, link targets. */
export function listTree(root: string, path = ""): ListedEntry[] {
  const listed: ListedEntry[] = [];
  for (const name of readdirSync(join(root, path)).sort()) {
    const child = path === "" ? name : `${path}/${name}`;
    const absolute = join(root, child);
    const stat = lstatSync(absolute);
    const base = { path: child, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, ino: stat.ino };
    if (stat.isDirectory()) {
      listed.push({ ...base, type: "directory" });
      listed.push(...listTree(root, child));
    } else if (stat.isSymbolicLink()) listed.push({ ...base, type: "symlink", linkTarget: readlinkSync(absolute) });
    else if (stat.isFile()) listed.push({ ...base, type: "file", content: readFileSync(absolute).toString("base64") });
    else listed.push({ ...base, type: "other" });
  }
  return listed;
}

/** The tree as path -> what a user would see: file contents, "dir", or "-> target". */
export function contentsOf(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of listTree(root)) {
    if (entry.type === "file") out[entry.path] = Buffer.from(entry.content ?? "", "base64").toString();
    else if (entry.type === "directory") out[entry.path] = "dir";
    else if (entry.type === "symlink") out[entry.path] = `-> ${entry.linkTarget}`;
    else out[entry.path] = "other";
  }
  return out;
}

export function sha256(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

export type CraftedType = "file" | "link" | "symlink" | "character-device" | "block-device" | "directory" | "fifo" | "contiguous-file" | "pax" | "sparse";

export interface CraftedEntry {
  name: string;
  type?: CraftedType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  content?: string | Buffer;
  /** Size to declare in the header, when it must differ from the content's length. */
  declaredSize?: number;
  /** pax records to put in a pax header before this entry (path, size, ...). */
  pax?: Record<string, string>;
}

const TYPEFLAGS: Record<CraftedType, string> = {
  file: "0",
  link: "1",
  symlink: "2",
  "character-device": "3",
  "block-device": "4",
  directory: "5",
  fifo: "6",
  "contiguous-file": "7",
  pax: "x",
  sparse: "S",
};

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

export function tarHeader(entry: CraftedEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  const name = Buffer.from(entry.name);
  if (name.length > 100) throw new Error(`crafted names must fit in 100 bytes: ${entry.name}`);
  name.copy(block, 0);
  block.write(octal(entry.mode ?? 0o644, 8), 100, "ascii");
  block.write(octal(entry.uid ?? 1000, 8), 108, "ascii");
  block.write(octal(entry.gid ?? 1000, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(entry.mtime ?? 1_700_000_000, 12), 136, "ascii");
  block.write(TYPEFLAGS[entry.type ?? "file"], 156, "ascii");
  if (entry.linkname !== undefined) Buffer.from(entry.linkname).copy(block, 157);
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return block;
}

function padded(content: Buffer): Buffer {
  const rest = content.length % 512;
  return rest === 0 ? content : Buffer.concat([content, Buffer.alloc(512 - rest)]);
}

function paxRecords(records: Record<string, string>): Buffer {
  const parts = Object.entries(records).map(([key, value]) => {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (Buffer.byteLength(`${length}${body}`) !== length) length += 1;
    return Buffer.from(`${length}${body}`);
  });
  return Buffer.concat(parts);
}

/** A tar archive of exactly these entries; `end: false` leaves off the end-of-archive blocks. */
export function craftTar(entries: CraftedEntry[], options: { end?: boolean } = {}): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    if (entry.pax !== undefined) {
      const records = paxRecords(entry.pax);
      blocks.push(tarHeader({ name: "PaxHeader", type: "pax" }, records.length), padded(records));
    }
    const content = Buffer.from(entry.content ?? "");
    blocks.push(tarHeader(entry, entry.declaredSize ?? content.length), padded(content));
  }
  if (options.end !== false) blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/**
 * What GET /containers/{id}/archive?path=/workspace returns for a directory: names under "workspace/", modes with
 * file-type bits, a second name of a file as a hardlink to the first.
 */
export function dockerArchiveOf(dir: string, root = "workspace"): Buffer {
  const entries: CraftedEntry[] = [{ name: `${root}/`, type: "directory", mode: 0o40755 }];
  const firstNames = new Map<number, string>();
  for (const listed of listTree(dir)) {
    const name = `${root}/${listed.path}`;
    const stat = lstatSync(join(dir, listed.path));
    const mtime = Math.floor(stat.mtimeMs / 1000);
    if (listed.type === "directory") entries.push({ name: `${name}/`, type: "directory", mode: 0o40000 | listed.mode, mtime });
    else if (listed.type === "symlink") entries.push({ name, type: "symlink", mode: 0o120777, linkname: listed.linkTarget ?? "", mtime });
    else if (listed.type === "file") {
      const first = stat.nlink > 1 ? firstNames.get(listed.ino) : undefined;
      if (first !== undefined) entries.push({ name, type: "link", mode: 0o100000 | listed.mode, linkname: first, mtime });
      else {
        if (stat.nlink > 1) firstNames.set(listed.ino, name);
        entries.push({ name, type: "file", mode: 0o100000 | listed.mode, content: readFileSync(join(dir, listed.path)), mtime });
      }
    }
  }
  return craftTar(entries);
}

export function streamOf(archive: Buffer): Readable {
  return Readable.from([archive], { objectMode: false });
}

/** Extracts a packed workspace the way Docker's PUT archive would, into a stand-in for the volume. */
export async function extractLikeDocker(stream: Readable, dir: string): Promise<void> {
  await pipeline(stream, tarFs.extract(dir));
}

export interface ReadEntry {
  header: tar.Header;
  content: Buffer;
}

export async function readArchive(stream: Readable): Promise<ReadEntry[]> {
  const extract = tar.extract();
  stream.once("error", (error) => extract.destroy(error));
  stream.pipe(extract);
  const entries: ReadEntry[] = [];
  for await (const source of extract) {
    const entry = source as unknown as AsyncIterable<Buffer> & { header: tar.Header };
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk);
    entries.push({ header: entry.header, content: Buffer.concat(chunks) });
  }
  return entries;
}
