import { readFileSync } from 'node:fs';
import { grpcurlLines, shellWords } from '../../helpers/grpcurl.js';

/** A component start line of the README: `TLS_DIR=./certs npm run goods -- --host 0.0.0.0 ...`. */
export interface ReadmeStart {
  /** The component, as `npm run` names it: distributor, gateway, goods, members, purchases. */
  readonly component: string;
  readonly env: Readonly<Record<string, string>>;
  /** The words after `--`. */
  readonly args: readonly string[];
}

/** The commands of the README's "Running across machines" layout, as written there. */
export interface ReadmeMultiHostLayout {
  /** The section's text, from its heading to the next subsection's. */
  readonly section: string;
  /** The arguments of its `npm run certs -- ...` line, after the `--`. */
  readonly certsArgs: readonly string[];
  readonly starts: readonly ReadmeStart[];
  /** Its grpcurl lines (each with -cacert). */
  readonly grpcurl: readonly string[];
  /** The URL of each of its `curl URL` lines. */
  readonly curl: readonly string[];
}

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

export function readmeMultiHostLayout(): ReadmeMultiHostLayout {
  const start = readme.indexOf('## Running across machines');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const lines = section.split('\n');
  const certsLine = lines.find((line) => line.startsWith('npm run certs -- '));
  if (!certsLine) throw new Error('the README\'s "Running across machines" has no `npm run certs --` line');
  const starts = lines
    .filter((line) => /^(\w+=\S+ )+npm run \w+ -- /.test(line))
    .map((line): ReadmeStart => {
      const words = shellWords(line);
      const run = words.indexOf('npm');
      const env = Object.fromEntries(
        words
          .slice(0, run)
          .map((word) => [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)]),
      );
      return { component: words[run + 2]!, env, args: words.slice(words.indexOf('--') + 1) };
    });
  return {
    section,
    certsArgs: shellWords(certsLine).slice(4),
    starts,
    grpcurl: grpcurlLines(section),
    curl: lines.filter((line) => line.startsWith('curl ')).map((line) => shellWords(line)[1]!),
  };
}

/** One of the README's example hosts, 10.0.0.N, as its IPv6 lines write it: fd00::N. */
export function readmeIpv6Address(ipv4: string): string {
  const match = /^10\.0\.0\.(\d+)$/.exec(ipv4);
  if (!match) throw new Error(`not one of the README's example hosts (10.0.0.N): ${ipv4}`);
  return `fd00::${match[1]}`;
}

/** `10.0.0.N:PORT` (anywhere in `text`) as `[fd00::N]:PORT`. */
function bracketed(text: string): string {
  return text.replace(/(10\.0\.0\.\d+):(\d+)/g, (_whole, host: string, port: string) => {
    return `[${readmeIpv6Address(host)}]:${port}`;
  });
}

/**
 * The layout on IPv6, by the README's rules for it: addresses bare for `npm run certs` (`--host
 * distributor=fd00::1`), in brackets with a port (`--distributor [fd00::1]:9000`), and `--host ::`
 * where the lines say `--host 0.0.0.0`, the gateway's included (its default is 0.0.0.0).
 */
export function ipv6Layout(layout: ReadmeMultiHostLayout): ReadmeMultiHostLayout {
  const certsArgs = layout.certsArgs.map((word) =>
    word.replace(
      /^(\w+)=(\S+)$/,
      (_whole, name: string, host: string) => `${name}=${readmeIpv6Address(host)}`,
    ),
  );
  const starts = layout.starts.map(({ component, env, args }): ReadmeStart => {
    const v6 = args.map((word, index) => {
      const flag = args[index - 1];
      if (flag === '--host') return word === '0.0.0.0' ? '::' : readmeIpv6Address(word);
      if (flag === '--advertise-host') return readmeIpv6Address(word);
      if (flag === '--distributor') return bracketed(word);
      return word;
    });
    return { component, env, args: v6.includes('--host') ? v6 : ['--host', '::', ...v6] };
  });
  return {
    section: layout.section,
    certsArgs,
    starts,
    grpcurl: layout.grpcurl.map(bracketed),
    curl: layout.curl.map(bracketed),
  };
}
