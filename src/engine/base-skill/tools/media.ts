import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { WorkspacePathError } from "../workspace-path.js";
import type { SkillContext } from "../skill-context.js";
import { readConfinedFile } from "./files.js";
import { IMAGE_MIME_TYPES, mimeTypeOf } from "./mime-type.js";

// Perstack's limits, so a model is not handed more than providers accept inline.
const MAX_IMAGE_BYTES = 15 * 1024 * 1024;
const MAX_PDF_BYTES = 30 * 1024 * 1024;

export function registerMediaTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "readImageFile",
    {
      description: "Read a PNG, JPEG, GIF or WebP image in the workspace (max 15 MB) and return it as image content.",
      inputSchema: { path: z.string() },
    },
    async ({ path }) => {
      const mimeType = mimeTypeOf(path);
      if (!IMAGE_MIME_TYPES.has(mimeType)) {
        throw new WorkspacePathError(`readImageFile: ${JSON.stringify(path)} is not a PNG, JPEG, GIF or WebP image (by extension).`);
      }
      const { absolute, data } = await readConfinedFile(ctx, path, { maxBytes: MAX_IMAGE_BYTES, tooBig: "readImageFile takes images up to 15 MB." });
      return {
        content: [
          { type: "text", text: JSON.stringify({ path: absolute, mimeType, size: data.length }) },
          { type: "image", data: data.toString("base64"), mimeType },
        ],
      };
    },
  );

  server.registerTool(
    "readPdfFile",
    {
      description: "Read a PDF in the workspace (max 30 MB) and return it as an embedded base64 resource.",
      inputSchema: { path: z.string() },
    },
    async ({ path }) => {
      const { absolute, data } = await readConfinedFile(ctx, path, { maxBytes: MAX_PDF_BYTES, tooBig: "readPdfFile takes PDFs up to 30 MB." });
      if (data.subarray(0, 5).toString("latin1") !== "%PDF-") {
        throw new WorkspacePathError(`readPdfFile: ${JSON.stringify(path)} is not a PDF (it does not start with %PDF-).`);
      }
      const mimeType = "application/pdf";
      return {
        content: [
          { type: "text", text: JSON.stringify({ path: absolute, mimeType, size: data.length }) },
          { type: "resource", resource: { uri: pathToFileURL(absolute).href, mimeType, blob: data.toString("base64") } },
        ],
      };
    },
  );
}
