// The console's entry: scripts/build-console.mjs bundles this into dist/console/assets/app.js.
import { render } from "preact";
import { App } from "./app.js";

render(<App />, document.getElementById("app")!);
