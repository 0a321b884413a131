// The console: sign-in, then the views under one header. A read-only session (`perstack ui`) shows no action at
// all (new run, cancel, continue, answer, new comparison): its server has only the GET routes.
import { useEffect, useState } from "preact/hooks";
import { api, forgetToken, storedToken, storeToken, takeTokenFromFragment, whenUnauthorized } from "./api.js";
import type { Session } from "./api-types.js";
import { href, useRoute, type Route } from "./route.js";
import { messageOf } from "./views/common.js";
import { ComparisonView } from "./views/comparison-view.js";
import { ComparisonsList } from "./views/comparisons-list.js";
import { JobsList } from "./views/jobs-list.js";
import { NewRun } from "./views/new-run.js";
import { RunView } from "./views/run-view.js";
import { SignIn } from "./views/sign-in.js";

type SignInState = { phase: "checking" } | { phase: "signed-out"; error?: string; busy?: boolean } | { phase: "signed-in"; session: Session };

export function App() {
  const [state, setState] = useState<SignInState>(() => (storedToken() !== undefined || window.location.hash.startsWith("#token=") ? { phase: "checking" } : { phase: "signed-out" }));
  const route = useRoute();

  const signIn = async (token: string) => {
    setState({ phase: "signed-out", busy: true });
    try {
      const session = await api.session(token);
      storeToken(token);
      setState({ phase: "signed-in", session });
    } catch (error) {
      forgetToken();
      setState({ phase: "signed-out", error: messageOf(error) });
    }
  };

  useEffect(() => {
    whenUnauthorized((message) => {
      forgetToken();
      setState({ phase: "signed-out", error: message });
    });
    const token = takeTokenFromFragment() ?? storedToken();
    if (token !== undefined) void signIn(token);
  }, []);

  if (state.phase === "checking") return <p class="muted loading centered">Signing in…</p>;
  if (state.phase === "signed-out") return <SignIn error={state.error} busy={state.busy === true} onSubmit={(token) => void signIn(token)} />;
  const { session } = state;
  const signOut = () => {
    forgetToken();
    setState({ phase: "signed-out" });
  };
  return (
    <div class="layout">
      <header class="topbar">
        <a class="brand" href={href({ name: "runs" })}>
          perstack
        </a>
        <nav class="nav">
          <a href={href({ name: "runs" })} class={route.name === "runs" || route.name === "run" ? "active" : ""} data-testid="nav-runs">
            Runs
          </a>
          {!session.readOnly && (
            <a href={href({ name: "new-run" })} class={route.name === "new-run" ? "active" : ""} data-testid="nav-new-run">
              New run
            </a>
          )}
          <a href={href({ name: "comparisons" })} class={route.name.includes("comparison") ? "active" : ""} data-testid="nav-comparisons">
            Comparisons
          </a>
        </nav>
        <div class="session">
          <span class="tenant" title="tenant">
            {session.tenant}
          </span>
          {session.mode === "local" && <span class="badge tone-neutral">local · read-only</span>}
          {session.mode !== "local" && session.readOnly && <span class="badge tone-neutral">read-only</span>}
          <button type="button" class="button small" data-testid="signout" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main class="content">
        <View route={route} session={session} />
      </main>
    </div>
  );
}

function View({ route, session }: { route: Route; session: Session }) {
  switch (route.name) {
    case "runs":
      return <JobsList session={session} />;
    case "run":
      return <RunView key={route.jobId} jobId={route.jobId} session={session} />;
    case "new-run":
      return session.readOnly ? <ReadOnly /> : <NewRun />;
    case "comparisons":
      return <ComparisonsList session={session} />;
    case "comparison":
      return <ComparisonView key={route.id} id={route.id} />;
  }
}

function ReadOnly() {
  return <p class="muted">This console is read-only: it shows the runs on this machine and starts none.</p>;
}
