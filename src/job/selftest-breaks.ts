// The isolation properties `perstack selftest --unsafe-break` can remove, to prove the selftest notices; apart from
// selftest.ts so the CLI can offer them without loading the selftest.
export const BREAKABLE = ["internal-gateway", "env"] as const;
export type Breakable = (typeof BREAKABLE)[number];
