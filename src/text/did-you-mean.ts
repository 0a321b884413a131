// "Did you mean" for every name a user types: config keys, runtimes, providers, experts, event types.
// Case-insensitive edit distance; a prefix ("claude" for "claude-code") counts as the likeliest slip.

export function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return row[b.length]!;
}

export function closestKey(key: string, candidates: readonly string[]): string | undefined {
  // A shortened name ("claude" for "claude-code") is the likeliest slip.
  const extended = candidates.find((c) => key.length >= 3 && c.toLowerCase().startsWith(key.toLowerCase()));
  if (extended) return extended;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = levenshtein(key, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const tolerance = Math.max(2, Math.floor(key.length / 3));
  return bestDistance <= tolerance ? best : undefined;
}
