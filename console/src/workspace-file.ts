// A workspace chosen in the browser, as the API takes it: a tar.gz, base64 in the JSON body.

/** The file's bytes as base64; refuses what is not gzip at all, before anything is uploaded. */
export async function workspaceBase64(file: File): Promise<string> {
  const magic = new Uint8Array(await file.slice(0, 2).arrayBuffer());
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) throw new Error(`${file.name} is not a .tar.gz (gzip) file; make one with: tar czf workspace.tar.gz -C <dir> .`);
  const url = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new Error(`${file.name} could not be read`));
    reader.readAsDataURL(file);
  });
  // A data: URL is "data:<type>;base64,<bytes>": the bytes are what the API wants.
  return url.slice(url.indexOf(",") + 1);
}

/** A chosen text file's content (a perstack.toml to fill a textarea). */
export function fileText(file: File): Promise<string> {
  return file.text();
}

/** Saves bytes the console fetched (a workspace, a report) as a download; the URL lives only as long as the click. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
