import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeFolder } from '../../src/common/make-folder.js';

const scratch = mkdtempSync(join(tmpdir(), 'make-folder-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('makeFolder', () => {
  it('makes every missing folder down to the one asked for, each with the mode, and takes one that is there', () => {
    const deep = join(scratch, 'a', 'b', 'c');
    makeFolder(deep, 0o700);
    for (const folder of [join(scratch, 'a'), join(scratch, 'a', 'b'), deep]) {
      expect(statSync(folder).isDirectory()).toBe(true);
      expect(statSync(folder).mode & 0o777).toBe(0o700);
    }
    expect(() => makeFolder(deep, 0o700)).not.toThrow();
    expect(() => makeFolder(`${deep}/../c/`, 0o700)).not.toThrow();
  });

  it('fails with EEXIST on a file where the folder should be, and ENOTDIR on a file above it, naming the file', () => {
    const file = join(scratch, 'a-file');
    writeFileSync(file, '');
    // Named as such: mkdir's "EEXIST: file already exists" read as if the folder were there.
    expect(() => makeFolder(file, 0o700)).toThrow(
      expect.objectContaining({ code: 'EEXIST', message: `${file} is a file, not a folder` }),
    );
    expect(() => makeFolder(join(file, 'below'), 0o700)).toThrow(
      expect.objectContaining({ code: 'ENOTDIR', message: `${file} is a file, not a folder` }),
    );
  });

  it('fails with ENOENT where a folder cannot be made although the one above exists (under /proc)', () => {
    expect(() => makeFolder(`/proc/make-folder-${process.pid}/data`, 0o700)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
  });
});
