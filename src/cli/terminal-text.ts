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
