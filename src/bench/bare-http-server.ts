import { createServer } from 'node:http';

// The ceiling of a Node.js HTTP front end on this machine: keep-alive, a constant small JSON body,
// no work at all. Every gateway figure is compared with it in the same run.
const body = JSON.stringify({ key: 0, errorcode: 0, errormessage: 'success' });
const server = createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  response.end(body);
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
