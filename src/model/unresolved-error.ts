/** A recorded event that cannot be read back whole: a reference or a recorded shortcut it holds does not resolve. */
export class UnresolvedMessagesError extends Error {
  override name = "UnresolvedMessagesError";
}
