// Keeps the agent's version of a path copy-back did not apply (a protected policy file, or a path the user
// changed during the run) so the user can look at it. Kept entries mirror their workspace paths under one
// directory; symlinks are recreated as symlinks, never followed. Keeping is journaled like the rest of the
// apply, so a failed copy-back leaves no half-kept tree behind either.
import { dirname, join } from "node:path";
import { WorkspaceCopyError } from "../errors.js";
import type { ApplyJournal } from "./apply-journal.js";
import { ContainedWriter, type Owner } from "./contained-writer.js";
import type { StagedEntry } from "./staged-tree.js";
import type { WorkspaceFs } from "./workspace-fs.js";

export class AgentVersionKeeper {
  private writer: ContainedWriter | undefined;

  /**
   * @param keepDir trusted absolute directory, created on first use
   * @param section subdirectory of keepDir, so kept policy files and kept conflicts cannot collide
   */
  constructor(
    private readonly fs: WorkspaceFs,
    private readonly journal: ApplyJournal,
    private readonly keepDir: string,
    private readonly section: string,
    private readonly owner: Owner | undefined,
  ) {}

  /** Keeps the entry and returns the absolute path it was kept at. */
  async keep(entry: StagedEntry): Promise<string> {
    const writer = await this.sectionWriter();
    await writer.makeParents(entry.path, this.owner);
    const existing = await writer.inspect(entry.path);
    if (entry.type === "directory") {
      if (existing === undefined) await writer.makeDirectory(entry.path, this.owner);
    } else {
      if (existing !== undefined) throw new WorkspaceCopyError(`cannot keep the agent's version of ${entry.path}: ${writer.absolute(entry.path)} already exists; use a fresh directory to keep files in`);
      if (entry.type === "file") await writer.copyIn(entry.stagedAt, entry.path, entry.mode, this.owner);
      else await writer.makeSymlink(entry.path, entry.linkTarget, this.owner);
    }
    return writer.absolute(entry.path);
  }

  private async sectionWriter(): Promise<ContainedWriter> {
    if (this.writer !== undefined) return this.writer;
    let created: string[] = [];
    await this.journal.record(
      `create ${this.keepDir}`,
      async () => {
        const firstCreated = await this.fs.mkdirp(this.keepDir, 0o755);
        created = firstCreated === undefined ? [] : directoriesBetween(firstCreated, this.keepDir);
      },
      async () => {
        for (const dir of [...created].reverse()) await this.fs.rmdir(dir);
      },
    );
    if (this.owner !== undefined) for (const dir of created) await this.fs.lchown(dir, this.owner.uid, this.owner.gid);
    const keepRoot = new ContainedWriter(this.fs, this.journal, this.keepDir);
    const stat = await keepRoot.inspect(this.section);
    if (stat === undefined) await keepRoot.makeDirectory(this.section, this.owner);
    else if (!stat.isDirectory()) throw new WorkspaceCopyError(`cannot keep the agent's versions in ${join(this.keepDir, this.section)}: it exists and is not a directory`);
    this.writer = new ContainedWriter(this.fs, this.journal, join(this.keepDir, this.section));
    return this.writer;
  }
}

/** The directories from `first` down to `last`, which mkdir -p just created. */
function directoriesBetween(first: string, last: string): string[] {
  const dirs: string[] = [];
  for (let dir = last; ; dir = dirname(dir)) {
    dirs.unshift(dir);
    if (dir === first || dirname(dir) === dir) return dirs;
  }
}
