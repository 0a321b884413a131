// A file of an image's build context. Its own module because both the plan and the runtime adapters (which supply
// some of these files) name it, and neither should import the other for it.
export interface ContextFile {
  /** Relative to the build context's root. */
  path: string;
  content: string;
}
