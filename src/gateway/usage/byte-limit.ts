// How much of one response a meter may hold at once: one JSON body, one SSE event, one NDJSON line, one
// event-stream message. Beyond it the meter gives up on that response (reports no usage) rather than grow
// without bound on a hostile or runaway body.
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
