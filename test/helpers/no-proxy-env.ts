/**
 * The suite talks only to loopback and to addresses of network namespaces it makes itself, never
 * through a proxy; but grpc-js sends a channel to any address, loopback included, through the proxy
 * the environment names, and the test helpers' own clients (a rogue node, a test's direct client)
 * are made without the shop's channelOptionsFor. So `npm test` on a machine behind a corporate proxy
 * (http_proxy set for npm) failed wherever such a client dialled. A test of the shop under a proxy
 * names one itself, for the processes it starts.
 */
for (const name of ['http_proxy', 'https_proxy', 'grpc_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'GRPC_PROXY']) {
  delete process.env[name];
}
