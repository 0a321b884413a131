// The provider gateway's image: the node base image, the gateway's compiled modules (their import closure in
// dist/) and the npm packages they import at the versions this package was tested with. Its tag is a hash of all
// of that, so a second run builds nothing and a change to the gateway's code builds a new one.
import { createHash } from "node:crypto";
import type { ContextFile } from "./context-file.js";
import type { BaseImage, ImagePlan } from "./sandbox-plan.js";
import { render } from "./templates.js";

/** The gateway's entry, relative to dist/, and where its files sit in the build context. */
export const GATEWAY_ENTRY = "src/gateway/main.js";
export const GATEWAY_CONTEXT_DIR = "gateway";

/**
 * `programFiles` are the gateway's modules and manifests (runtimes/engine-files.ts engineContextFiles with the
 * gateway's entry and directory), read at the edge so that planning stays pure.
 */
export function gatewayImage(base: BaseImage, caBundle: string, programFiles: ContextFile[]): ImagePlan {
  const hasCaBundle = caBundle.trim().length > 0;
  const dockerfile = render("templates/gateway.Dockerfile.hbs", { baseImage: base.ref, hasCaBundle });
  const contextFiles: ContextFile[] = [...programFiles];
  if (hasCaBundle) contextFiles.push({ path: "extra-ca.crt", content: caBundle });
  const repository = "perstack/gateway";
  const tag = createHash("sha256")
    .update(JSON.stringify({ dockerfile, contextFiles, base: base.id ?? base.ref }))
    .digest("hex")
    .slice(0, 16);
  return { role: "gateway", repository, tag, ref: `${repository}:${tag}`, baseImage: base.ref, dockerfile, contextFiles };
}
