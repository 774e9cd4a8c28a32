/**
 * Calls `onGone` once when the process that started this one has ended, however it ended: a
 * SIGKILL leaves no chance to forward anything, and Node.js has no PR_SET_PDEATHSIG. An orphan is
 * adopted by init (or a subreaper), so its parent pid changes: that is polled every `intervalMs`.
 * The timer does not keep the process alive. Returns a function that stops watching.
 */
export function watchParent(onGone: (formerParent: number) => void, intervalMs = 250): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
