import { connect as netConnect } from 'node:net';
import { Duplex } from 'node:stream';
import { type ConnectionOptions, connect } from 'node:tls';

/**
 * A TLS client whose writes after its first (the ClientHello) wait for `release`: its handshake is
 * done on its side (TLS 1.3 sends the client's certificate last) and not yet on the server's:
 * `answer` is all it read once the server closed it.
 */
export function heldHandshake(port: number, options: ConnectionOptions) {
  const tcp = netConnect(port, '127.0.0.1');
  let writes = 0;
  let holding = true;
  const heldBack: [Buffer, (error?: Error | null) => void][] = [];
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      writes++;
      if (holding && writes > 1) heldBack.push([chunk, callback]);
      else tcp.write(chunk, callback);
    },
    final(callback) {
      tcp.end();
      callback();
    },
    destroy(error, callback) {
      tcp.destroy();
      callback(error);
    },
  });
  tcp.on('data', (chunk: Buffer) => wire.push(chunk));
  tcp.on('end', () => wire.push(null));
  tcp.on('error', (error) => wire.destroy(error));
  tcp.on('close', () => wire.destroy());
  const socket = connect({ ...options, socket: wire });
  const clientDone = new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  const answer = new Promise<string>((resolve) => {
    socket.on('error', () => {});
    socket.once('close', () => resolve(text));
  });
  return {
    socket,
    clientDone,
    answer,
    release: () => {
      holding = false;
      for (const [chunk, callback] of heldBack.splice(0)) tcp.write(chunk, callback);
    },
  };
}
