// Every write copy-back makes on the host goes through here. Before each one, every directory between the root
// and the target is lstat-ed and must be a real directory, so nothing is ever written through a symlink, whoever
// made it; each change is journaled with its inverse so the whole apply can be rolled back.
import type { Stats } from "node:fs";
import { join } from "node:path";
import { WorkspaceCopyError } from "../errors.js";
import type { ApplyJournal } from "./apply-journal.js";
import { ancestorsOf, normalizeRelativePath } from "./relative-path.js";
import type { WorkspaceFs } from "./workspace-fs.js";

export interface Owner {
  uid: number;
  gid: number;
}

export class ContainedWriter {
  private asideCount = 0;

  /**
   * @param root a real directory (no symlink in its own path matters: only what lies below it is checked)
   * @param asideDir where originals are moved to; on the same filesystem so moving is a rename
   */
  constructor(
    private readonly fs: WorkspaceFs,
    private readonly journal: ApplyJournal,
    readonly root: string,
    private readonly asideDir?: string,
  ) {}

  absolute(path: string): string {
    // Paths come from the validated archive or the snapshot; re-checking costs nothing and keeps a caller bug
    // from ever turning into a write outside the root.
    if (normalizeRelativePath(path) !== path) throw new WorkspaceCopyError(`refusing to write ${JSON.stringify(path)} under ${this.root}: not a plain relative path`);
    return join(this.root, path);
  }

  /** Why the directories leading to `path` are not all real directories, or undefined if they are. */
  async parentProblem(path: string): Promise<string | undefined> {
    for (const ancestor of ancestorsOf(path)) {
      const stat = await this.lstatIfPresent(join(this.root, ancestor));
      if (stat === undefined) return `${ancestor} does not exist`;
      if (stat.isSymbolicLink()) return `${ancestor} is a symlink`;
      if (!stat.isDirectory()) return `${ancestor} is not a directory`;
    }
    return undefined;
  }

  /** lstat of the path, or undefined if nothing is there. */
  async inspect(path: string): Promise<Stats | undefined> {
    return this.lstatIfPresent(this.absolute(path));
  }

  async list(path: string): Promise<string[]> {
    await this.requireParents(path);
    return this.fs.readdir(this.absolute(path));
  }

  /** Moves the original out of the way; rollback moves it back, so it keeps its inode, owner and times. */
  async moveAside(path: string): Promise<void> {
    if (this.asideDir === undefined) throw new Error("this writer has no directory for originals");
    await this.requireParents(path);
    const from = this.absolute(path);
    const to = join(this.asideDir, String(this.asideCount++));
    await this.journal.record(
      `move ${from} aside to ${to}`,
      () => this.fs.rename(from, to),
      () => this.fs.rename(to, from),
    );
  }

  /** Renames a staged file into place; the path must be free, since rename would silently replace it. */
  async placeFile(stagedAt: string, path: string): Promise<void> {
    await this.requireFree(path);
    const to = this.absolute(path);
    await this.journal.record(
      `place ${to}`,
      () => this.fs.rename(stagedAt, to),
      () => this.fs.rename(to, stagedAt),
    );
  }

  async makeDirectory(path: string, owner?: Owner): Promise<void> {
    await this.requireParents(path);
    const target = this.absolute(path);
    // 0o700 until the final mode is set at the end, so nobody else can slip anything in meanwhile.
    await this.journal.record(
      `create directory ${target}`,
      () => this.fs.mkdir(target, 0o700),
      () => this.fs.rmdir(target),
    );
    if (owner !== undefined) await this.fs.lchown(target, owner.uid, owner.gid);
  }

  /** Creates the symlink itself with its raw target; nothing it points at is ever looked at. */
  async makeSymlink(path: string, linkTarget: string, owner?: Owner): Promise<void> {
    await this.requireParents(path);
    const target = this.absolute(path);
    await this.journal.record(
      `create symlink ${target}`,
      () => this.fs.symlink(linkTarget, target),
      () => this.fs.unlink(target),
    );
    if (owner !== undefined) await this.fs.lchown(target, owner.uid, owner.gid);
  }

  /** Copies a staged file to a new path; the copy refuses to replace anything, a symlink included. */
  async copyIn(from: string, path: string, mode: number, owner?: Owner): Promise<void> {
    await this.requireParents(path);
    const target = this.absolute(path);
    await this.journal.record(
      `copy to ${target}`,
      () => this.fs.copyFileExclusive(from, target),
      () => this.fs.unlink(target),
    );
    if (owner !== undefined) await this.fs.lchown(target, owner.uid, owner.gid);
    await this.fs.chmod(target, mode);
  }

  /** Sets permission bits on a file or directory that was just checked not to be a symlink. */
  async changeMode(path: string, mode: number): Promise<void> {
    await this.requireParents(path);
    const target = this.absolute(path);
    const stat = await this.fs.lstat(target);
    // chmod follows symlinks, so the target is checked right before.
    if (!stat.isDirectory() && !stat.isFile()) throw new WorkspaceCopyError(`refusing to change the mode of ${target}: it is not a file or directory`);
    const previous = stat.mode & 0o7777;
    await this.journal.record(
      `chmod ${target}`,
      () => this.fs.chmod(target, mode),
      () => this.fs.chmod(target, previous),
    );
  }

  /** Creates whatever directories are missing between the root and `path`. */
  async makeParents(path: string, owner?: Owner): Promise<void> {
    for (const ancestor of ancestorsOf(path)) {
      const stat = await this.inspect(ancestor);
      if (stat === undefined) await this.makeDirectory(ancestor, owner);
      else if (!stat.isDirectory()) throw new WorkspaceCopyError(`cannot keep ${path} under ${this.root}: ${ancestor} exists there and is not a directory`);
    }
  }

  private async requireParents(path: string): Promise<void> {
    const problem = await this.parentProblem(path);
    if (problem !== undefined) throw new WorkspaceCopyError(`refusing to write ${this.absolute(path)}: ${problem} under ${this.root}`);
  }

  private async requireFree(path: string): Promise<void> {
    await this.requireParents(path);
    if ((await this.inspect(path)) !== undefined) throw new WorkspaceCopyError(`refusing to replace ${this.absolute(path)}: something is already there`);
  }

  private async lstatIfPresent(path: string): Promise<Stats | undefined> {
    try {
      return await this.fs.lstat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw error;
    }
  }
}
