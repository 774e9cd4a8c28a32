/**
 * How much short of a timeout a watch that looks at its calls on an interval (WholeRequestWatch,
 * UnreadAnswerWatch) may have seen one waiting and still act on it. The looks come on the event
 * loop's millisecond clock, which performance.now() can find a fraction of a millisecond short (a
 * look 2,499 ms after the one before), so the looks that make up a timeout could come to a hair under
 * it and the call waited for one look more: a goods service under `npm start` reset calls whose
 * request never ended 12.4 to 14.6 s after they opened, not the 10 to 12.5 s the operations guide gives.
 */
export const LOOK_SLACK_MS = 20;
