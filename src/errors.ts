// One error type per failure a user can act on. The CLI prints `message` as one line (no stack unless --verbose);
// every message names the offending key, path or value and says what to do.

export class PerstackError extends Error {
  /** Process exit code the CLI uses for this failure. */
  readonly exitCode: number = 1;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class ConfigNotFoundError extends PerstackError {}
export class ConfigSyntaxError extends PerstackError {}
export class ConfigSchemaError extends PerstackError {}
export class UnknownExpertError extends PerstackError {}
export class UnknownRuntimeError extends PerstackError {}
export class RuntimeNotAvailableError extends PerstackError {}
export class UnsupportedConfigError extends PerstackError {}
export class MissingEnvError extends PerstackError {}
export class InvalidOptionError extends PerstackError {}
export class DockerUnavailableError extends PerstackError {}
export class ImageBuildError extends PerstackError {}
export class SandboxError extends PerstackError {}
/** Build-time prerequisites the user must fix on the host (debootstrap, root, npm, apt sources). */
export class BootstrapPrerequisiteError extends PerstackError {}
/** --continue / --continue-job named a job that is not in perstack/jobs. */
export class JobNotFoundError extends PerstackError {}
/** --resume-from named a checkpoint the job does not have, or a checkpoint file is unreadable. */
export class CheckpointNotFoundError extends PerstackError {}
/** The job exists but cannot be continued the way the flags ask (runtime, expert, pending interactive call). */
export class CannotContinueError extends PerstackError {}
