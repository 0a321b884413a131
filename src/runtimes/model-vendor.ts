// Which vendor a model name plainly belongs to, so that e.g. a claude model on the gemini runtime is refused
// before anything is built. Names nobody can place (custom deployments, aliases) are let through.
import type { ModelVendor } from "./types.js";

const VENDOR_NAMES: Record<ModelVendor, string> = { anthropic: "Anthropic", google: "Google", openai: "OpenAI" };

export function modelVendor(model: string): ModelVendor | undefined {
  const name = model.toLowerCase().replace(/^(models\/|anthropic\/|google\/|openai\/)/, "");
  if (/^claude[-.]|^claude$/.test(name)) return "anthropic";
  if (/^gemini[-.]|^gemma[-.]/.test(name)) return "google";
  if (/^(gpt-|o\d(-|$)|codex-|chatgpt-)/.test(name)) return "openai";
  return undefined;
}

export function vendorName(vendor: ModelVendor): string {
  return VENDOR_NAMES[vendor];
}
