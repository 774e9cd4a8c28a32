import { createServer } from 'node:net';

/**
 * A loopback port that nothing listens on: one the system gave a moment ago and that was then
 * closed. For a test that needs a connection refused; a fixed port may be taken (by `npm start`).
 */
export function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
