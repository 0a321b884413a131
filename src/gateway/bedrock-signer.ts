// SigV4 for Amazon Bedrock, with AWS's own signer. The signature covers the final request the gateway sends (method,
// host, path, query and a hash of the body), so the body is buffered before signing and forwarded unchanged.
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { UpstreamAuth, UpstreamRequest } from "./upstream-auth.js";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

// Bedrock's runtime API (bedrock-runtime.<region>.amazonaws.com) signs for the service "bedrock".
const SERVICE = "bedrock";

/** The signer the gateway uses; also what a test upstream recomputes the signature with. */
export function bedrockSignatureV4(region: string, credentials: AwsCredentials): SignatureV4 {
  return new SignatureV4({ service: SERVICE, region, credentials, sha256: Sha256 });
}

function queryRecord(params: URLSearchParams): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of params) {
    const existing = query[name];
    query[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return query;
}

/**
 * Signs only the host, the content type and what SigV4 adds itself: headers a hop might reword (accept-encoding,
 * user-agent, connection) stay out of the signature so they cannot break it.
 */
export function bedrockAuth(region: string, credentials: AwsCredentials, now: () => Date = () => new Date()): UpstreamAuth {
  const signer = bedrockSignatureV4(region, credentials);
  return {
    async headersFor(request: UpstreamRequest): Promise<Record<string, string>> {
      const headers: Record<string, string> = { host: request.url.host };
      const contentType = request.headers["content-type"];
      if (contentType !== undefined) headers["content-type"] = contentType;
      const signed = await signer.sign(
        {
          method: request.method,
          protocol: request.url.protocol,
          hostname: request.url.hostname,
          port: request.url.port ? Number(request.url.port) : undefined,
          // The path exactly as it goes on the wire (model ids arrive percent-encoded); the signer encodes it again
          // for the canonical request, as AWS's services expect.
          path: request.url.pathname,
          query: queryRecord(request.url.searchParams),
          headers,
          body: request.body,
        },
        { signingDate: now() },
      );
      const added: Record<string, string> = {};
      for (const [name, value] of Object.entries(signed.headers)) {
        if (name !== "host" && name !== "content-type") added[name.toLowerCase()] = value;
      }
      return added;
    },
  };
}
