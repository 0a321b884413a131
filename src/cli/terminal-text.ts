// Text from the sandbox (model output, tool arguments and results, error messages, file names) reaches the user's
// terminal through the live view. A terminal acts on escape sequences: an agent could rewrite what is on screen,
// set the window title, or plant clipboard contents (OSC 52). So everything printed goes through this first.
import { stripVTControlCharacters } from "node:util";

// C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that can make text read
// differently from what it is ("Trojan Source").
// eslint-disable-next-line no-control-regex -- control characters are what this is about
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** The text with every terminal escape sequence and control character removed; newlines and tabs stay. */
export function terminalSafe(text: string): string {
  return stripVTControlCharacters(text).replace(UNSAFE, "");
}

// What JSON.stringify leaves as raw characters but a terminal would act on: DEL, the C1 controls (one of them starts
// an escape sequence on its own) and the bidirectional overrides. It escapes C0 itself.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON text made safe to print: the characters terminalSafe would remove are written as \u escapes instead, so the
 * output still parses to exactly the same value. They can only occur inside strings, where an escape is valid.
 */
export function jsonTerminalSafe(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
