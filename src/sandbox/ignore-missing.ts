// What a removal may meet and still count as done: the thing is gone already (404), or on its way out (409).
export function ignoreMissing(error: unknown): void {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 404 || status === 409) return;
  throw error;
}
