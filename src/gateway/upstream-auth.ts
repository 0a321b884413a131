// What the gateway adds to a request so the upstream accepts it: the real credentials, which only the gateway holds.
// Implementations: a static key header (credentials.ts), SigV4 (bedrock-signer.ts), an OAuth token (vertex-token.ts).

/** The request as it will leave the gateway (auth headers and parameters of the client already removed). */
export interface UpstreamRequest {
  method: string;
  /** The full upstream URL, query included. */
  url: URL;
  /** Lowercase names. */
  headers: Readonly<Record<string, string>>;
  body: Buffer;
}

export interface UpstreamAuth {
  /** The headers to add to (or replace on) the request; lowercase names. */
  headersFor(request: UpstreamRequest): Promise<Record<string, string>>;
}

export function staticHeaderAuth(headers: Record<string, string>): UpstreamAuth {
  const copy = { ...headers };
  return { headersFor: () => Promise.resolve(copy) };
}
