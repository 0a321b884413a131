// Where the console is, in the URL's fragment (#/runs/<jobId>): a reload or a shared link opens the same view, and
// the fragment never reaches the server, which serves the one page at /.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { name: "runs" }
  | { name: "run"; jobId: string }
  | { name: "new-run" }
  | { name: "comparisons" }
  | { name: "comparison"; id: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").filter((part) => part !== "");
  const [first, second] = parts.map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  if (first === "runs" && second) return { name: "run", jobId: second };
  if (first === "new") return { name: "new-run" };
  if (first === "comparisons" && second) return { name: "comparison", id: second };
  if (first === "comparisons") return { name: "comparisons" };
  return { name: "runs" };
}

export function href(route: Route): string {
  switch (route.name) {
    case "runs":
      return "#/runs";
    case "run":
      return `#/runs/${encodeURIComponent(route.jobId)}`;
    case "new-run":
      return "#/new";
    case "comparisons":
      return "#/comparisons";
    case "comparison":
      return `#/comparisons/${encodeURIComponent(route.id)}`;
  }
}

export function navigate(route: Route): void {
  window.location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}
