// Refreshing what a view shows while someone looks at it: a task runs at once, then again `intervalMs` after each
// run ends (never two at a time), paused while the tab is hidden and run at once when it is shown again. The task's
// signal is aborted when the view goes away: the task then drops what it gets. It does not abort its request with
// it: a request cut short is a failed request in the browser's log, for nothing.
import { useEffect, useRef } from "preact/hooks";

/** `intervalMs` 0: run once; null: not at all (there is nothing left to refresh). */
export function usePolling(task: (signal: AbortSignal) => Promise<void>, intervalMs: number | null, deps: readonly unknown[]): void {
  const latest = useRef(task);
  latest.current = task;
  useEffect(() => {
    if (intervalMs === null) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let running = false;
    const tick = async () => {
      clearTimeout(timer);
      if (running || controller.signal.aborted) return;
      if (document.visibilityState !== "visible") return;
      running = true;
      try {
        await latest.current(controller.signal);
      } catch {
        // The task shows its own errors; polling goes on.
      } finally {
        running = false;
      }
      if (!controller.signal.aborted && intervalMs > 0) timer = setTimeout(() => void tick(), intervalMs);
    };
    const shown = () => {
      if (document.visibilityState === "visible") void tick();
    };
    document.addEventListener("visibilitychange", shown);
    void tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", shown);
    };
    // The task is read through a ref: only what the caller names restarts the polling.
  }, [intervalMs, ...deps]);
}
