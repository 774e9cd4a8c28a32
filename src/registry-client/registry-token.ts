/**
 * Checks a registry token before it is used: one grpc-js could not send (a character outside
 * printable ASCII, a space, a newline read from a file) is refused here with a message that does not
 * repeat it: grpc-js's own error quotes the whole value, the secret included. The token itself is
 * never sent by the project's components (see registry-credentials.ts), but tools send it as a
 * bearer, and the distributor's token file is read the same way.
 */
export function checkRegistryToken(token: string): void {
  // `token: process.env.SHOP_REGISTRY_TOKEN` with the variable set but empty: say so plainly.
  if (token === '') {
    throw new TypeError("the registry token is empty: give the distributor's token, or none (undefined)");
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new TypeError(
      `the registry token must be printable ASCII characters without spaces or line breaks (the one given has ${token.length} characters, not all of them such)`,
    );
  }
}
