/**
 * How much short of a timeout a watch that looks at its calls on an interval (WholeRequestWatch,
 * UnreadAnswerWatch) may have seen one waiting and still act on it. The looks come on the event
 * loop's millisecond clock, which performance.now() can find a fraction of a millisecond short (a
 * look 2,499 ms after the one before), so the looks that make up a timeout could come to a hair under
 * it and the call waited for one look more: a goods service under `npm start` reset calls whose
 * request never ended 12.4 to 14.6 s after they opened, not the 10 to 12.5 s the operations guide gives.
 */
const LOOK_SLACK_MS = 20;

/**
 * The slack of a watch that looks every `intervalMs`: LOOK_SLACK_MS, or a tenth of the interval when
 * that is less, so that a watch given a timeout of a few tens of milliseconds (in code: the flags'
 * minimums keep their looks 25 ms apart or more) never acts one look early.
 */
export function lookSlackMs(intervalMs: number): number {
  return Math.min(LOOK_SLACK_MS, intervalMs / 10);
}
