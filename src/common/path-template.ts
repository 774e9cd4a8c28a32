/**
 * The path templates of google.api.HttpRule (see third_party/google/api/http.proto):
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 *
 * `{id}` is short for `{id=*}`. `*` matches one non-empty path segment, `**` zero or more and only
 * as the last segment. A variable captures the segments its own pattern matches, joined by "/".
 */

/** One segment pattern of a template. */
export type SegmentPattern =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'single' }
  | { readonly kind: 'multi' };

/** A template variable: the request field it sets and the segments it spans. */
export interface TemplateVariable {
  /** The field path as written, e.g. "id" or "book.id". */
  readonly fieldPath: string;
  /** Index of its first segment in {@link PathTemplate.segments}. */
  readonly start: number;
  /** Index after its last segment. */
  readonly end: number;
}

/** A parsed path template. */
export interface PathTemplate {
  /** The template as written, e.g. "/goods/{id}". */
  readonly text: string;
  readonly segments: readonly SegmentPattern[];
  readonly variables: readonly TemplateVariable[];
  /** The custom verb after ":", or undefined. */
  readonly verb: string | undefined;
  /**
   * The template with every variable reduced to its pattern: "/goods/*" for "/goods/{id}". Two
   * templates with the same shape match the same paths, whatever their variables are named.
   */
  readonly shape: string;
}

/** A template that does not follow the grammar; the message says where. */
export class PathTemplateError extends Error {
  override readonly name = 'PathTemplateError';
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A literal: unreserved characters, sub-delims, ":" and "@", or percent-escapes (RFC 3986 pchar). */
const LITERAL = /^(?:[A-Za-z0-9._~!$&'()+,;=@-]|%[0-9A-Fa-f]{2})+$/;

/** Parses a template; throws {@link PathTemplateError}. */
export function parsePathTemplate(text: string): PathTemplate {
  const fail = (problem: string): never => {
    throw new PathTemplateError(`path template "${text}": ${problem}`);
  };
  if (!text.startsWith('/')) fail('must start with "/"');
  let rest = text.slice(1);
  let verb: string | undefined;
  // The verb follows the last "}" or "/"; a ":" inside a variable's braces is not one.
  const lastColon = rest.lastIndexOf(':');
  if (lastColon >= 0 && lastColon > rest.lastIndexOf('}') && lastColon > rest.lastIndexOf('/')) {
    verb = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!LITERAL.test(verb)) fail(`the verb "${verb}" is not a literal`);
  }
  const segments: SegmentPattern[] = [];
  const variables: TemplateVariable[] = [];
  const shape: string[] = [];
  // "/" alone: the root, no segment.
  let position = rest.length === 0 ? 1 : 0;
  const readSegment = (word: string): SegmentPattern => {
    if (word === '*') return { kind: 'single' };
    if (word === '**') return { kind: 'multi' };
    if (!LITERAL.test(word)) fail(`"${word}" is not a path segment`);
    return { kind: 'literal', value: decodeLiteral(word) };
  };
  while (position <= rest.length) {
    if (rest[position] === '{') {
      const close = rest.indexOf('}', position);
      if (close < 0) fail('a "{" is not closed');
      const inside = rest.slice(position + 1, close);
      const equals = inside.indexOf('=');
      const fieldPath = equals < 0 ? inside : inside.slice(0, equals);
      if (!fieldPath.split('.').every((part) => IDENT.test(part))) {
        fail(`"${fieldPath}" is not a field path`);
      }
      if (variables.some((variable) => variable.fieldPath === fieldPath)) {
        fail(`the variable "${fieldPath}" appears twice`);
      }
      const patterns = equals < 0 ? ['*'] : inside.slice(equals + 1).split('/');
      const start = segments.length;
      for (const word of patterns) {
        if (word.includes('{') || word.includes('}')) fail('variables cannot nest');
        segments.push(readSegment(word));
      }
      variables.push({ fieldPath, start, end: segments.length });
      shape.push(patterns.join('/'));
      position = close + 1;
    } else {
      let end = rest.indexOf('/', position);
      if (end < 0) end = rest.length;
      const word = rest.slice(position, end);
      if (word.includes('{') || word.includes('}')) fail('a variable must take whole segments');
      segments.push(readSegment(word));
      shape.push(word);
      position = end;
    }
    if (position < rest.length && rest[position] !== '/') fail('a variable must take whole segments');
    position++;
  }
  const multi = segments.findIndex((segment) => segment.kind === 'multi');
  if (multi >= 0 && multi !== segments.length - 1) fail('"**" must be the last segment');
  return {
    text,
    segments,
    variables,
    verb,
    shape: `/${shape.join('/')}${verb === undefined ? '' : `:${verb}`}`,
  };
}

/**
 * Matches a request path (no query string) against a template. Returns each variable's value,
 * percent-decoded, in the template's order, or undefined when the path does not match. As
 * google/api/http.proto has it, a variable of one segment (`{id}`) is decoded whole ("a%2Fb" is
 * "a/b"), while a variable of several (`{name=shelves/*}`, `{path=**}`) keeps its "/" separators and
 * leaves "%2F" (and "%2f") as it is: decoded, "files/a%2Fb" and "files/a/b" gave one value for a
 * name of two segments and a name of three.
 */
export function matchPathTemplate(template: PathTemplate, path: string): string[] | undefined {
  if (!path.startsWith('/')) return undefined;
  let rest = path.slice(1);
  if (template.verb !== undefined) {
    const suffix = `:${template.verb}`;
    if (!rest.endsWith(suffix)) return undefined;
    rest = rest.slice(0, -suffix.length);
  }
  const { segments } = template;
  if (segments.length === 0) return rest.length === 0 ? [] : undefined;
  const raw = rest.split('/');
  const decoded: string[] = [];
  const multi = segments.length > 0 && segments[segments.length - 1]!.kind === 'multi';
  if (multi ? raw.length < segments.length - 1 : raw.length !== segments.length) return undefined;
  for (let index = 0; index < raw.length; index++) {
    const value = decodeSegment(raw[index]!);
    if (value === undefined) return undefined;
    const pattern = segments[Math.min(index, segments.length - 1)]!;
    if (pattern.kind === 'literal') {
      if (value !== pattern.value) return undefined;
    } else if (pattern.kind === 'single' && value.length === 0) {
      return undefined;
    }
    decoded.push(value);
  }
  return template.variables.map((variable) => {
    const end = variable.end === segments.length ? undefined : variable.end;
    if (!isMultiSegment(template, variable)) return decoded.slice(variable.start, end).join('/');
    // Every segment decoded already, so that each piece between the escaped slashes decodes too.
    return raw.slice(variable.start, end).map(decodeKeepingSlashes).join('/');
  });
}

/** Whether a variable spans several segments (`{name=shelves/*}`) or any number (`{path=**}`). */
function isMultiSegment(template: PathTemplate, variable: TemplateVariable): boolean {
  return variable.end - variable.start > 1 || template.segments[variable.start]?.kind === 'multi';
}

/** A segment percent-decoded except its escaped slashes, "%2F" and "%2f", which stay as written. */
function decodeKeepingSlashes(segment: string): string {
  if (!segment.includes('%')) return segment;
  return segment
    .split(ESCAPED_SLASH)
    .map((piece, index) => (index % 2 === 1 ? piece : decodeURIComponent(piece)))
    .join('');
}

/** An escaped slash, captured, so that split keeps it between the pieces. */
const ESCAPED_SLASH = /(%2[Ff])/;

/**
 * Whether some path matches both templates (as {@link matchPathTemplate} matches): then a request
 * for it could go to either, so two services may not hold them. A verb is the path's last ":word"
 * (a verb holds no ":"): two different verbs never meet, and a template without one meets one with
 * it only where its own segment at that place can end in that ":verb".
 */
export function templatesOverlap(a: PathTemplate, b: PathTemplate): boolean {
  if (a.verb === b.verb) return segmentsOverlap(a.segments, b.segments);
  if (a.verb !== undefined && b.verb !== undefined) return false;
  const [withVerb, without] = a.verb !== undefined ? [a, b] : [b, a];
  let suffix: string;
  try {
    // Literals are compared decoded, and so a path's ":%41" is the verb "%41" and ends a segment in ":A".
    suffix = `:${decodeURIComponent(withVerb.verb!)}`;
  } catch {
    return true;
  }
  const last = withVerb.segments.at(-1);
  // "/:verb": the path is one segment, ":verb" itself.
  if (last === undefined) return segmentsOverlap([{ kind: 'literal', value: suffix }], without.segments);
  const prefix = withVerb.segments.slice(0, -1);
  if (last.kind === 'multi') return multiBeforeVerbOverlaps(prefix, suffix, without.segments);
  return segmentsOverlap([...prefix, carrierOf(last, suffix)], without.segments);
}

/** The last segment of a template with a verb: its own pattern, then the ":verb" it carries. */
function carrierOf(last: SegmentPattern, suffix: string): Pattern {
  return last.kind === 'literal'
    ? { kind: 'literal', value: `${last.value}${suffix}` }
    : { kind: 'suffix', suffix };
}

/**
 * Whether `prefix` then "**:verb" meets `other` (no verb): after the prefix, "**:verb" takes one or
 * more segments, the last ending in `suffix` (":verb" alone when "**" takes none: "/a/:verb").
 */
function multiBeforeVerbOverlaps(
  prefix: readonly SegmentPattern[],
  suffix: string,
  other: readonly SegmentPattern[],
): boolean {
  // "**" taking no segment: the verb ends the prefix's last segment ("/a/**:verb" takes "/a:verb").
  const lastOfPrefix = prefix.at(-1);
  if (lastOfPrefix && segmentsOverlap([...prefix.slice(0, -1), carrierOf(lastOfPrefix, suffix)], other))
    return true;
  for (let index = 0; index < prefix.length; index++) {
    const mine = prefix[index]!;
    const theirs = other[index];
    if (theirs === undefined) return false;
    if (theirs.kind === 'multi') return true;
    if (!segmentOverlaps(mine, theirs)) return false;
  }
  const rest = other.slice(prefix.length);
  if (rest.length === 0) return false;
  if (rest.some((pattern) => pattern.kind === 'multi')) return true;
  const end = rest.at(-1)!;
  return end.kind === 'single' || (end.kind === 'literal' && end.value.endsWith(suffix));
}

/** A segment pattern, or one segment made of any non-empty text and then `suffix` (a `*` before a verb). */
type Pattern = SegmentPattern | { readonly kind: 'suffix'; readonly suffix: string };

/** Whether some list of path segments matches both patterns ("**" is last, and takes zero or more). */
function segmentsOverlap(a: readonly Pattern[], b: readonly Pattern[]): boolean {
  for (let index = 0; ; index++) {
    const left = a[index];
    const right = b[index];
    if (left?.kind === 'multi' || right?.kind === 'multi') return true;
    if (left === undefined || right === undefined) return left === right;
    if (!segmentOverlaps(left, right)) return false;
  }
}

/** Whether one segment can match both patterns, neither of them "**". */
function segmentOverlaps(left: Pattern, right: Pattern): boolean {
  if (left.kind === 'single' || right.kind === 'single') return true;
  if (left.kind === 'literal' && right.kind === 'literal') return left.value === right.value;
  if (left.kind === 'suffix' && right.kind === 'suffix') {
    return left.suffix.endsWith(right.suffix) || right.suffix.endsWith(left.suffix);
  }
  const [literal, suffixed] = left.kind === 'literal' ? [left, right] : [right, left];
  const { value } = literal as { value: string };
  const { suffix } = suffixed as { suffix: string };
  return value.length > suffix.length && value.endsWith(suffix);
}

/** Whether the template has no variable and no wildcard: it matches one path only. */
export function isLiteralTemplate(template: PathTemplate): boolean {
  return template.segments.every((segment) => segment.kind === 'literal');
}

function decodeLiteral(word: string): string {
  return decodeURIComponent(word);
}

function decodeSegment(segment: string): string | undefined {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
