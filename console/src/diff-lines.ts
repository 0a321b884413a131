// How the diff view colours a unified diff: each line's kind, from the text alone (pure, unit-tested).

/**
 * Each line's kind. Inside a hunk, its header's line counts say which lines belong to it, so a removed line that
 * reads "--- x" is a removal, not a file header.
 */
export function diffLineClasses(lines: readonly string[]): string[] {
  let oldLeft = 0;
  let newLeft = 0;
  return lines.map((line) => {
    if (oldLeft > 0 || newLeft > 0) {
      const first = line[0];
      if (first === "+") {
        newLeft -= 1;
        return "add";
      }
      if (first === "-") {
        oldLeft -= 1;
        return "del";
      }
      if (first === "\\") return "note";
      oldLeft -= 1;
      newLeft -= 1;
      return "context";
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
    if (hunk) {
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      return "hunk";
    }
    if (line.startsWith("\\")) return "note";
    return "meta";
  });
}
