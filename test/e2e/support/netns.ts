import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';

/** What a command run inside a namespace printed, and how it ended. */
export interface NamespaceRun {
  /** The exit code; null when it was killed (for instance by the timeout). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Hosts made of Linux network namespaces, for tests that need components on separate addresses:
 * one namespace per host, each with `lo` and an `eth0` on a bridge. The bridge lives in a hub
 * namespace of its own, so nothing is added to the namespace the test runs in, and the addresses
 * exist only inside these namespaces.
 */
export interface TestNetwork {
  /** The namespace of a host, e.g. "shop-1234-goods". */
  namespace(host: string): string;
  /** The command prefix that runs a program on a host: `ip netns exec <namespace>`. */
  prefix(host: string): string[];
  /** Runs a program on a host; killed after `timeoutMs`. Never rejects for an exit code. */
  run(host: string, command: string, args: readonly string[], timeoutMs?: number): Promise<NamespaceRun>;
  /**
   * Makes host `at` discard every packet from host `from` as it arrives, silently, as a host that is
   * down or a firewall that drops does; returns what ends it. No netfilter here: a policy rule
   * (blackhole) before the lookup of local addresses, which comes first by default (priority 0) and
   * is moved after it, in `at`'s namespace only; IPv4 hosts only. Such a rule would stop `at` answering `from`'s ARP
   * requests too, and `from`'s kernel would fail its connects at once (EHOSTUNREACH), so `from` is
   * told `at`'s hardware address. One drop at a time on each host.
   */
  dropPackets(at: string, from: string): () => void;
  /**
   * Gives a host its own view of host names: `names` (name → addresses) in the hosts file that
   * `ip netns exec` puts over /etc/hosts (/etc/netns/<namespace>/hosts; the machine's own /etc/hosts
   * is never touched), beside localhost. Written in place, so that programs already running on the
   * host, which see the file through a bind mount of its inode, read the new names too (glibc reads
   * the file on every lookup). A name left out does not resolve there (no DNS server is reachable
   * from a namespace). Give a host its names before its first program starts: the file is mounted
   * when one starts.
   */
  setHostNames(host: string, names: Readonly<Record<string, readonly string[]>>): void;
  /**
   * Gives a host a DNS server of its own: `address` in the resolv.conf that `ip netns exec` puts
   * over /etc/resolv.conf (/etc/netns/<namespace>/resolv.conf), with the system's default timeout
   * and attempts (5 s, twice) written out. Before the host's first program starts, as setHostNames.
   */
  setNameServer(host: string, address: string): void;
  /**
   * Deletes every namespace, and with them their interfaces; kill what runs inside first, or a
   * namespace lives on (unnamed) until its last process ends. Throws if one is still listed.
   */
  remove(): void;
}

const IP_TIMEOUT_MS = 10_000;

/**
 * The start of every namespace's name: `shop` unless SHOP_TEST_NETNS_PREFIX says otherwise, so that
 * whoever shares the host (several runs, several people) can tell theirs apart, and remove them.
 */
const NAMESPACE_PREFIX = process.env.SHOP_TEST_NETNS_PREFIX || 'shop';

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: IP_TIMEOUT_MS, stdio: 'pipe' });
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    return (typeof stderr === 'string' && stderr.trim()) || error.message;
  }
  return String(error);
}

/**
 * Why network namespaces cannot be made here, or undefined when they can: the process is not root,
 * or `ip netns add` fails (no iproute2, no CAP_SYS_ADMIN in a container, ...).
 */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, not ${process.platform}`;
  if (process.getuid?.() !== 0) return 'not root, and creating network namespaces needs root';
  const probe = `${NAMESPACE_PREFIX}-${process.pid}-probe`;
  try {
    ip(['netns', 'add', probe]);
  } catch (error) {
    return `"ip netns add" failed: ${messageOf(error)}`;
  }
  try {
    ip(['netns', 'del', probe]);
  } catch {}
  return undefined;
}

/**
 * Makes one namespace per entry of `hosts` (name → IPv4 address, all in one /24, or IPv6 address,
 * all in one /64; an IPv6 address is usable at once: no duplicate address detection, which would
 * hold it "tentative", unbindable, for about two seconds), named after this
 * process's pid so that parallel runs do not clash. If a step fails, what was made is removed
 * before the error is thrown. A process exit also removes it, in case the test's cleanup never ran.
 */
export function createTestNetwork(hosts: Readonly<Record<string, string>>): TestNetwork {
  const base = `${NAMESPACE_PREFIX}-${process.pid}`;
  const namespace = (host: string): string => {
    if (!(host in hosts)) throw new Error(`createTestNetwork: no host "${host}"`);
    return `${base}-${host}`;
  };
  const hub = `${base}-hub`;
  const made: string[] = [];
  /** The /etc/netns folders made for hosts files. */
  const resolverFolders = new Set<string>();
  const remove = (): void => {
    process.off('exit', remove);
    for (const folder of resolverFolders) rmSync(folder, { recursive: true, force: true });
    resolverFolders.clear();
    for (const name of made.splice(0).reverse()) {
      try {
        ip(['netns', 'del', name]);
      } catch {}
    }
  };
  const add = (name: string): void => {
    ip(['netns', 'add', name]);
    made.push(name);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
  };
  process.once('exit', remove);
  try {
    add(hub);
    ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', hub, 'link', 'set', 'br0', 'up']);
    for (const [index, [host, address]] of Object.entries(hosts).entries()) {
      const name = namespace(host);
      add(name);
      // Both ends are made from the hub: the pair never exists in the test's own namespace.
      const port = `veth${index}`;
      ip(['-n', hub, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      ip(['-n', hub, 'link', 'set', port, 'master', 'br0', 'up']);
      ip([
        '-n',
        name,
        'addr',
        'add',
        ...(isIPv6(address) ? [`${address}/64`, 'nodad'] : [`${address}/24`]),
        'dev',
        'eth0',
      ]);
      ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    }
  } catch (error) {
    remove();
    throw error;
  }
  const dropPackets = (at: string, from: string): (() => void) => {
    const [link] = JSON.parse(ip(['-n', namespace(at), '-j', 'link', 'show', 'eth0'])) as Array<{
      address: string;
    }>;
    ip([
      '-n',
      namespace(from),
      'neigh',
      'replace',
      hosts[at]!,
      'lladdr',
      link!.address,
      'dev',
      'eth0',
      'nud',
      'permanent',
    ]);
    ip(['-n', namespace(at), 'rule', 'add', 'pref', '10', 'from', `${hosts[from]}/32`, 'blackhole']);
    if (!ip(['-n', namespace(at), 'rule', 'show', 'pref', '100']).includes('lookup local')) {
      ip(['-n', namespace(at), 'rule', 'add', 'pref', '100', 'lookup', 'local']);
      ip(['-n', namespace(at), 'rule', 'del', 'pref', '0']);
    }
    return () => {
      ip(['-n', namespace(at), 'rule', 'del', 'pref', '10']);
    };
  };
  const setHostNames = (host: string, names: Readonly<Record<string, readonly string[]>>): void => {
    const folder = `/etc/netns/${namespace(host)}`;
    resolverFolders.add(folder);
    mkdirSync(folder, { recursive: true });
    const lines = ['127.0.0.1 localhost', '::1 localhost'];
    for (const [name, addresses] of Object.entries(names)) {
      for (const address of addresses) lines.push(`${address} ${name}`);
    }
    // writeFileSync truncates the file it opens: the same inode, as the bind mounts need.
    writeFileSync(`${folder}/hosts`, `${lines.join('\n')}\n`);
  };
  const setNameServer = (host: string, address: string): void => {
    const folder = `/etc/netns/${namespace(host)}`;
    resolverFolders.add(folder);
    mkdirSync(folder, { recursive: true });
    writeFileSync(`${folder}/resolv.conf`, `nameserver ${address}\noptions timeout:5 attempts:2\n`);
  };
  return {
    namespace,
    dropPackets,
    setHostNames,
    setNameServer,
    prefix: (host) => ['ip', 'netns', 'exec', namespace(host)],
    run: (host, command, args, timeoutMs = 15_000) =>
      new Promise((resolve) => {
        execFile(
          'ip',
          ['netns', 'exec', namespace(host), command, ...args],
          { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' },
          (error, stdout, stderr) => {
            const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
            resolve({ code, stdout, stderr });
          },
        );
      }),
    remove() {
      remove();
      const left = ip(['netns', 'list'])
        .split('\n')
        .filter((line) => line.startsWith(`${base}-`));
      if (left.length > 0) throw new Error(`network namespaces left behind: ${left.join(', ')}`);
    },
  };
}
