// One error type per failure a user can act on. The CLI prints `message` as one line (no stack unless --verbose);
// every message names the offending key, path or value and says what to do.
//
// Exit codes: 2 means the user's input is wrong (flags, perstack.toml, env, job ids) and nothing was started;
// everything else that goes wrong (Docker down, a build or the sandbox failing) is 1.

export class PerstackError extends Error {
  /** Process exit code the CLI uses for this failure. */
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input: the command, perstack.toml or the environment must change before anything can run. Exit code 2. */
export class BadInputError extends PerstackError {
  override readonly exitCode: number = 2;
}

export class ConfigNotFoundError extends BadInputError {}
export class ConfigSyntaxError extends BadInputError {}
export class ConfigSchemaError extends BadInputError {}
export class UnknownExpertError extends BadInputError {}
export class UnknownRuntimeError extends BadInputError {}
export class RuntimeNotAvailableError extends BadInputError {}
export class UnsupportedConfigError extends BadInputError {}
export class MissingEnvError extends BadInputError {}
export class InvalidOptionError extends BadInputError {}
/** --continue / --continue-job named a job that is not in perstack/jobs. */
export class JobNotFoundError extends BadInputError {}
/** --resume-from named a checkpoint the job does not have, or a checkpoint file is unreadable. */
export class CheckpointNotFoundError extends BadInputError {}
/** `perstack log --run` named a run that is not in the job (or in any job). */
export class RunNotFoundError extends BadInputError {}
/** The job exists but cannot be continued the way the flags ask (runtime, expert, pending interactive call). */
export class CannotContinueError extends BadInputError {}
/** Another perstack serve works on the same --data directory: nothing was started. */
export class DataDirInUseError extends BadInputError {}

export class DockerUnavailableError extends PerstackError {}
export class ImageBuildError extends PerstackError {}
export class SandboxError extends PerstackError {}
/** The Docker engine stopped or restarted under a run (and took its containers with it): EngineRestarted, EngineStopped. */
export class EngineLostError extends PerstackError {
  constructor(message: string, name: "EngineRestarted" | "EngineStopped") {
    super(message);
    this.name = name;
  }
}
/** The disk that holds perstack/jobs filled up: the run's files are kept whole up to that point. */
export class DiskFullError extends PerstackError {}
/** The Docker engine's disk is full: images, containers or volumes cannot be written. */
export class EngineDiskFullError extends PerstackError {}
/** No free subnet for a run's networks in PERSTACK_SUBNET_POOL: other networks occupy it. */
export class SubnetPoolExhaustedError extends PerstackError {}
/** Build-time prerequisites the user must fix on the host (debootstrap, root, npm, apt sources). */
export class BootstrapPrerequisiteError extends PerstackError {}
/** The workspace could not be copied into or back out of the sandbox (limits, a refused archive, the disk). */
export class WorkspaceCopyError extends PerstackError {}
/** A tenant's workspace upload to `perstack serve` was refused: not a tar.gz, an unsafe entry, or over a limit. */
export class BadUploadError extends BadInputError {}
/**
 * A tenant's config names an upstream `perstack serve` will not contact: not https, or on a private, loopback,
 * link-local or metadata address, and not allowed by the operator (--allow-private-upstream).
 */
export class UpstreamNotAllowedError extends BadInputError {}
/** `--server`: perstack serve could not be reached (refused, no such host, an untrusted certificate): nothing was done there. */
export class ServerUnreachableError extends PerstackError {}
/**
 * `--server`: perstack serve refused the request as the caller's mistake (a 4xx: the token, a flag, perstack.toml, a
 * job id, a limit). Exit code 2. `status` and `code` are the server's.
 */
export class ServerRefusedError extends BadInputError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}
/**
 * `--server`: perstack serve failed (a 5xx), turned the request away for now (429), answered what this client cannot
 * read, or its event stream kept dropping.
 */
export class ServerFailedError extends PerstackError {}
