import { credentials, Metadata, type StatusObject } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { DistributorConnection } from '../../src/registry-client/distributor-connection.js';
import { DISTRIBUTOR_METHODS, RegistryCredentials } from '../../src/registry-client/registry-credentials.js';
import { type ComponentProcess, freePort, spawnComponent } from '../e2e/support/processes.js';

// A proof names this side of the connection its call goes out on. With a distributor address of two
// IP addresses (a name with A and AAAA records), grpc-js connects to the second 250 ms after the
// first if the first has not answered yet, takes whichever answers first and drops the other. The
// proof named the channel's newest connection, which could be the dropped one: the distributor
// refused the call as made for another connection, a refusal for good (the component stopped).

const TOKEN = 'proof-picked-connection-token';

describe('a proof of the registry token, with two addresses of a slow distributor', () => {
  let distributor: ComponentProcess | undefined;
  const connections: DistributorConnection[] = [];
  afterEach(async () => {
    for (const connection of connections.splice(0)) connection.close();
    distributor?.child.kill('SIGCONT');
    distributor?.child.kill('SIGKILL');
    await distributor?.exited();
    distributor = undefined;
  });

  it('names the connection grpc-js picked for the call, not the one it connected last', async () => {
    const port = await freePort();
    // Listening on every IPv4 address, so that 127.0.0.1 and 127.0.0.2 are the same distributor.
    distributor = spawnComponent(
      'src/distributor/main.ts',
      ['--host', '0.0.0.0', '--port', String(port), '--metrics-port', 'off'],
      { SHOP_REGISTRY_TOKEN: TOKEN },
    );
    await distributor.waitForLine(/listening on/);
    const target = `ipv4:127.0.0.1:${port},127.0.0.2:${port}`;
    const connection = new DistributorConnection(target, credentials.createInsecure(), {});
    connections.push(connection);
    const { options, check } = new RegistryCredentials(TOKEN, target).forCall(
      DISTRIBUTOR_METHODS.watch,
      connection,
    );
    // Stopped, the distributor's kernel still accepts both connections, but it answers neither
    // before grpc-js has made the second.
    distributor.child.kill('SIGSTOP');
    setTimeout(() => distributor?.child.kill('SIGCONT'), 400);
    const outcome = await new Promise<string>((resolve) => {
      const call = connection.client.watch(
        { subscription: { resumeInstanceId: '', resumeRevision: 0 } },
        new Metadata(),
        options,
      );
      const proof = check(call);
      call.on('metadata', () => {
        resolve(proof.proven ? 'proven' : 'not proven');
        call.cancel();
      });
      call.on('error', () => {});
      call.on('status', (ended: StatusObject) => resolve(`ended: ${ended.details}`));
    });
    expect(outcome).toBe('proven');
  });
});
