/** Exit codes every command keeps: scripts rely on them. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * An error the CLI reports itself: `error: <message> (<code>)` and `hint: <hint>` on stderr. `body`
 * holds the broker's error body when the error came from the API.
 */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly exitCode: number = EXIT_FAILURE,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad arguments caught before anything is sent: exit 2. */
export const usageError = (message: string, hint?: string, code = 'UsageError') =>
  new CliError(code, message, hint, EXIT_USAGE);
