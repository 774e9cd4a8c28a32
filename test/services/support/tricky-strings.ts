/**
 * Text that naive code gets wrong: quotes, SQL injection attempts, backslashes and LIKE wildcards,
 * surrounding spaces, unicode beyond the BMP, combining marks, a NUL, and 10 KB of mixed scripts.
 */
export const TRICKY_STRINGS: readonly string[] = [
  `It's a "quoted" \`value\``,
  "' or '1'='1' -- ",
  "'); DROP TABLE goods; DROP TABLE members; --",
  'back\\slash \\\' \\" %_ \\0 \\n',
  '  leading and trailing spaces  ',
  '한국어 상품 😀👍🏽 e\u0301 ﬁ Ωmega',
  'nul\u0000inside',
  '가나다라 abc 😀 \n\t'.repeat(512),
];

/** The first `count` characters (code points, never half a surrogate pair). */
export function firstCharacters(text: string, count: number): string {
  return [...text].slice(0, count).join('');
}
