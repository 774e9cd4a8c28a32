/**
 * How far apart two clocks are, as a person reads it: "95 s", "40 min", "23 h", "3 days". Whole
 * seconds below two minutes, whole minutes below two hours, whole hours below two days; with
 * `coarse`, whole minutes from the first ("less than a minute" before it), so that a message that
 * carries it stays the same from one read to the next a few seconds later.
 */
export function clockDifferenceText(ms: number, coarse = false): string {
  const seconds = Math.abs(ms) / 1000;
  if (seconds < 120 && !coarse) return `${Math.round(seconds)} s`;
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h`;
  return `${Math.round(minutes / 1440)} days`;
}
