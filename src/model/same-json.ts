/**
 * Whether two values of an event make the same JSON text (same keys in the same order, same values), looking `depth`
 * levels deep; deeper, they are taken as different, so that what the agent nests cannot make the comparison costly.
 */
export function sameJson(a: unknown, b: unknown, depth: number): boolean {
  if (a === b) return true;
  if (depth === 0 || typeof a !== "object" || typeof b !== "object" || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  const otherKeys = Object.keys(b);
  if (keys.length !== otherKeys.length) return false;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (otherKeys[i] !== key || !sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], depth - 1)) return false;
  }
  return true;
}
