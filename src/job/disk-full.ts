// What a run says when the disk that holds perstack/jobs fills up (storage/append-file.ts keeps every file whole).

export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export function diskFullMessage(jobDir: string, error: NodeJS.ErrnoException): string {
  const why = isDiskFull(error) ? "the disk is full" : `a write failed (${error.code ?? error.message})`;
  return `${why} where the run's files are (${jobDir}), so the run was stopped; its files are kept whole up to that point. Free some space, then continue the job`;
}
