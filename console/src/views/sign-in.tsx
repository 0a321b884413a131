// Sign-in: the tenant's token (`perstack tenants add` prints it; `perstack ui` puts it in the URL it prints). It is
// checked against GET /v1/session before it is kept, so a wrong one says why at once.
import { useState } from "preact/hooks";
import { ErrorBanner } from "./common.js";

export function SignIn({ error, busy, onSubmit }: { error: string | undefined; busy: boolean; onSubmit: (token: string) => void }) {
  const [token, setToken] = useState("");
  return (
    <main class="signin">
      <form
        class="card signin-card"
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim() !== "") onSubmit(token.trim());
        }}
      >
        <h1>perstack console</h1>
        <p class="muted">Sign in with your tenant token. It is kept in this tab only and forgotten when the tab closes.</p>
        <ErrorBanner message={error} />
        <label class="field">
          <span class="field-label">Token</span>
          <input
            type="password"
            autocomplete="off"
            spellcheck={false}
            required
            data-testid="signin-token"
            value={token}
            onInput={(event) => setToken(event.currentTarget.value)}
          />
        </label>
        <button type="submit" class="button primary" data-testid="signin-submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
