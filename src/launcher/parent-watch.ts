/**
 * The parent when the entry began (see noteParent), before its modules loaded: one that died
 * meanwhile left the process adopted already when watchParent first looked, so it saw no change.
 */
let parentAtEntry: number | undefined;

/** Notes the parent now: called first thing by an entry that watches it later, once loaded. */
export function noteParent(): void {
  parentAtEntry ??= process.ppid;
}

/**
 * Calls `onGone` once when the process that started this one has ended, however it ended: a
 * SIGKILL leaves no chance to forward anything, and Node.js has no PR_SET_PDEATHSIG. An orphan is
 * adopted by init (or a subreaper), so its parent pid changes: that is polled every `intervalMs`,
 * against the parent noted at the entry (noteParent) if it was. The timer does not keep the
 * process alive. Returns a function that stops watching.
 */
export function watchParent(onGone: (formerParent: number) => void, intervalMs = 250): () => void {
  const parent = parentAtEntry ?? process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
