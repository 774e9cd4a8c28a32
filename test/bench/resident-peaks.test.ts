import { describe, expect, it } from 'vitest';
import { ResidentPeaks, residentReport } from '../../src/bench/resident-peaks.js';

describe('ResidentPeaks', () => {
  it('keeps the highest reading of each process, named with its shop, past unreadable ones', () => {
    const readings = [
      { main: new Map([['gateway', 80]]), traced: new Map([['gateway', 90]]) },
      { main: new Map([['gateway', 94.5]]), traced: new Map([['gateway', Number.NaN]]) },
      { main: new Map([['gateway', 85]]), traced: new Map([['gateway', 82]]) },
    ];
    let turn = 0;
    const peaks = new ResidentPeaks([
      { suffix: '', read: () => readings[turn]!.main },
      { suffix: ' [tracing]', read: () => readings[turn]!.traced },
    ]);
    for (turn = 0; turn < readings.length; turn++) peaks.sample();
    expect(peaks.peaks).toEqual(
      new Map([
        ['gateway', 94.5],
        ['gateway [tracing]', 90],
      ]),
    );
  });

  it('reads on its own between start and stop, and once more when stopped', async () => {
    let reads = 0;
    const peaks = new ResidentPeaks([
      {
        suffix: '',
        read: () => {
          reads++;
          return new Map([['goods', reads]]);
        },
      },
    ]);
    peaks.start(5);
    await new Promise((resolve) => setTimeout(resolve, 60));
    peaks.stop();
    const stoppedAt = reads;
    expect(stoppedAt).toBeGreaterThanOrEqual(3);
    expect(peaks.peaks.get('goods')).toBe(stoppedAt);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(reads).toBe(stoppedAt);
  });
});

describe('residentReport', () => {
  it('shows after and peak side by side and marks what is over 100 MB (95.4 MiB)', () => {
    const lines = residentReport(
      new Map([
        ['gateway', 88.04],
        ['gateway [tracing]', 96],
      ]),
      new Map([
        ['gateway', 95.3],
        ['gateway [tracing]', 99.46],
        ['goods [twin]', 91],
      ]),
      250,
    );
    expect(lines).toEqual([
      'Resident memory (MiB): after the run, and the peak of readings every 250 ms while the cases ran',
      `${'process'.padEnd(17)}   after     peak`,
      `${'gateway'.padEnd(17)}    88.0     95.3`,
      `${'gateway [tracing]'.padEnd(17)}    96.0!    99.5!`,
      `${'goods [twin]'.padEnd(17)}        -    91.0`,
      '(! over 100 MB, 95.4 MiB; the target is read after the run)',
    ]);
  });

  it('says nothing when nothing was read', () => {
    expect(residentReport(new Map(), new Map(), 250)).toEqual([]);
  });
});
