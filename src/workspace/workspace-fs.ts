// The file-system calls copy-back makes, behind one small interface so a test can make any one of them fail and
// check that the workspace is rolled back exactly.
import type { Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";

export interface WorkspaceFs {
  realpath(path: string): Promise<string>;
  lstat(path: string): Promise<Stats>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string, mode: number): Promise<void>;
  /** mkdir -p for a trusted directory; returns the first directory it created, if any. */
  mkdirp(path: string, mode: number): Promise<string | undefined>;
  rmdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  lchown(path: string, uid: number, gid: number): Promise<void>;
  lutimes(path: string, atime: Date, mtime: Date): Promise<void>;
  open(path: string, flags: number, mode: number): Promise<FileHandle>;
  /** Copies without ever following or replacing an existing destination. */
  copyFileExclusive(from: string, to: string): Promise<void>;
  /** Removes a tree copy-back made for itself (staging and backups); never follows symlinks. */
  removeTree(path: string): Promise<void>;
}

export const nodeWorkspaceFs: WorkspaceFs = {
  realpath: (path) => fsp.realpath(path),
  lstat: (path) => fsp.lstat(path),
  readdir: (path) => fsp.readdir(path),
  mkdir: async (path, mode) => {
    await fsp.mkdir(path, { mode });
  },
  mkdirp: (path, mode) => fsp.mkdir(path, { mode, recursive: true }),
  rmdir: (path) => fsp.rmdir(path),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  symlink: (target, path) => fsp.symlink(target, path),
  chmod: (path, mode) => fsp.chmod(path, mode),
  lchown: (path, uid, gid) => fsp.lchown(path, uid, gid),
  lutimes: (path, atime, mtime) => fsp.lutimes(path, atime, mtime),
  open: (path, flags, mode) => fsp.open(path, flags, mode),
  copyFileExclusive: (from, to) => fsp.copyFile(from, to, fsp.constants.COPYFILE_EXCL),
  removeTree: (path) => fsp.rm(path, { recursive: true, force: true }),
};
