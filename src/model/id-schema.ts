// The safe id (ids.ts) as a zod schema, for the event and checkpoint schemas; apart from ids.ts, which processes that
// only make or check ids (the teardown process) load without zod.
import { z } from "zod";
import { SAFE_ID } from "./ids.js";

export const safeIdSchema = z.string().regex(SAFE_ID, { error: "must be an id of letters, digits, '-' and '_'" });
