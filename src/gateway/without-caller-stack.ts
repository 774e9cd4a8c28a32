/**
 * Starts a call with no stack trace captured while it starts. grpc-js makes an Error at the start
 * of every call, in case the call fails, to append the caller's stack to the failure's; capturing
 * a stack through optimized frames is costly, on every call, failed or not (see
 * docs/performance-log.md, "Two costs of every upstream call"). The gateway never shows those
 * stacks (a failed call becomes an envelope and a log line of its code and details), so its calls
 * start with Error.stackTraceLimit at 0, restored before this returns, whatever happens. What it
 * gives up: an exception thrown while a call starts carries no frames either. grpc-js may get a channel option for this (grpc/grpc-node#3083, open).
 */
export function withoutCallerStack<T>(start: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return start();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
