import { rmSync } from 'node:fs';
import type { TestPki } from '../../helpers/certs.js';
import type { TestNetwork } from './netns.js';
import { type ComponentProcess, spawnComponent } from './processes.js';

/** What differs for one component from the starter's defaults. */
export interface HostComponentOptions {
  /** The certificate it presents, when not its host's (a distributor on a goods host). */
  identity?: string;
  /** Its embedded store's folder, when not the test's (a second goods beside the first). */
  dataDir?: string;
}

/**
 * Starts components on the hosts of a test network, each with its host's certificate (mutual TLS),
 * the embedded store in `dataDir`, and pushed onto `processes` for the test's cleanup. The network
 * and the PKI are read when a component starts, so they may be made in a `beforeAll` after this.
 */
export function hostComponentStarter(setup: {
  network: () => TestNetwork;
  pki: () => TestPki;
  dataDir: () => string;
  processes: ComponentProcess[];
}): (host: string, entry: string, args: string[], options?: HostComponentOptions) => ComponentProcess {
  return (host, entry, args, options = {}) => {
    const files = setup.pki().files(options.identity ?? host);
    const component = spawnComponent(
      entry,
      args,
      {
        TLS_CA: files.caFile,
        TLS_CERT: files.certFile,
        TLS_KEY: files.keyFile,
        DATA_DIR: options.dataDir ?? setup.dataDir(),
        MYSQL_URL: '',
      },
      { prefix: setup.network().prefix(host) },
    );
    setup.processes.push(component);
    return component;
  };
}

/**
 * Ends what a namespace test made: its components killed (and waited for), then its data folder and
 * its network removed, whatever failed before.
 */
export async function removeHostComponents(
  processes: readonly ComponentProcess[],
  dataDir: string | undefined,
  network: TestNetwork | undefined,
): Promise<void> {
  try {
    for (const component of processes) component.child.kill('SIGKILL');
    await Promise.all(processes.map((component) => component.exited()));
  } finally {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    network?.remove();
  }
}
