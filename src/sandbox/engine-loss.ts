// PURE: what a run says when the Docker engine stopped or restarted under it. The engine takes every container of
// the run down with it, so the run cannot go on; what matters to the user is that nothing collected is lost, whether
// the sandbox is gone, and what to do next.

export type EngineLossName = "EngineRestarted" | "EngineStopped";

export interface EngineLossFacts {
  /** The engine answered again within `boundMs`. */
  back: boolean;
  boundMs: number;
  /** Where the engine is (DOCKER_HOST or the default socket). */
  where: string;
  /** What of the sandbox is still on the engine, and the commands that remove it. */
  left: Array<{ kind: string; name: string }>;
  removal: string[];
}

export interface EngineLoss {
  name: EngineLossName;
  message: string;
}

export function engineLoss(facts: EngineLossFacts): EngineLoss {
  const order = ["container", "volume", "network"];
  const left = [...facts.left]
    .sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind))
    .map((r) => `${r.kind} ${r.name}`)
    .join(", ");
  const removal = facts.removal.join(" && ");
  if (facts.back) {
    return {
      name: "EngineRestarted",
      message:
        `the Docker engine restarted during the run, which stopped the sandbox's containers, so the run was stopped; what was collected is kept` +
        (left ? `; could not remove ${left}: remove with ${removal}` : ", and the sandbox was removed once the engine answered again") +
        ". Check the engine's log for why it restarted, then continue the job",
    };
  }
  return {
    name: "EngineStopped",
    message:
      `the Docker engine at ${facts.where} stopped during the run and did not answer again within ${Math.round(facts.boundMs / 1000)} s, so the run was stopped; what was collected is kept` +
      (left ? `. Left on the engine: ${left}; once it runs again, the next perstack command removes them, or remove them with ${removal}` : "") +
      ". Start the engine (docker info must answer), then continue the job",
  };
}
