import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;

/** The project's own pages: the README and everything under docs/. */
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

/** Text outside fenced code blocks, where a `](...)` or a `#` line is not markdown. */
function outsideFences(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '');
}

/**
 * The anchors GitHub gives a page's headings: lower case, punctuation dropped but `-` and `_`,
 * spaces made `-`, a repeated heading numbered from `-1`.
 */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of outsideFences(markdown).split('\n')) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = heading
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replaceAll(' ', '-');
    const times = seen.get(slug) ?? 0;
    seen.set(slug, times + 1);
    anchors.add(times === 0 ? slug : `${slug}-${times}`);
  }
  return anchors;
}

/** Each relative link of a page (not `https:` and the like), as written. */
function relativeLinks(markdown: string): string[] {
  return [...outsideFences(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe("the project's pages", () => {
  it('reads anchors as GitHub makes them', () => {
    expect([
      ...headingAnchors(
        '# Run it\n## `distributor:///` for any grpc-js client\n### Run 55 (2026-12-07, later)\n',
      ),
    ]).toEqual(['run-it', 'distributor-for-any-grpc-js-client', 'run-55-2026-12-07-later']);
    expect([...headingAnchors('## Memory\n```sh\n# not a heading\n```\n## Memory\n')]).toEqual([
      'memory',
      'memory-1',
    ]);
  });

  it.each(PAGES)('%s links only to files and headings that exist', (page) => {
    const broken: string[] = [];
    for (const target of relativeLinks(readFileSync(join(ROOT, page), 'utf8'))) {
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? page : normalize(join(dirname(page), path));
      if (!existsSync(join(ROOT, file))) {
        broken.push(`${target}: no such file`);
      } else if (anchor !== undefined && file.endsWith('.md')) {
        const anchors = headingAnchors(readFileSync(join(ROOT, file), 'utf8'));
        if (!anchors.has(decodeURIComponent(anchor))) broken.push(`${target}: no such heading in ${file}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
