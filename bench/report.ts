// How the benchmark shows what it measured: a median, and a plain-text table of measures.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.

export interface Row {
  measure: string;
  value: string;
  detail: string;
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function table(rows: Row[]): string {
  const header: Row = { measure: "measure", value: "value", detail: "detail" };
  const all = [header, ...rows];
  const width = (key: "measure" | "value") => Math.max(...all.map((row) => row[key].length));
  const m = width("measure");
  const v = width("value");
  const line = (row: Row) => `${row.measure.padEnd(m)}  ${row.value.padStart(v)}  ${row.detail}`.trimEnd();
  return [line(header), `${"-".repeat(m)}  ${"-".repeat(v)}  ${"-".repeat(6)}`, ...rows.map(line)].join("\n");
}
