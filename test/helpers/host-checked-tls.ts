import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { type ChannelCredentials, type ChannelOptions, credentials } from '@grpc/grpc-js';

/** A client's TLS files: the CA to trust, and its own certificate and key for mutual TLS. */
export interface ClientTlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** A placeholder server name for connections dialled by IP address; no check reads it. */
const NAME_FOR_AN_IP = 'dialled-by-ip.invalid';

/**
 * TLS as a generic client (grpcurl) does it: the server's certificate must name the host dialled,
 * an IP address included. grpc-js would send that IP address as the TLS server name, which RFC 6066
 * forbids and Node warns about (DEP0123); here another name is sent, and the certificate is still
 * checked against the address.
 */
export function hostCheckedTls(
  address: string,
  files: ClientTlsFiles,
): { credentials: ChannelCredentials; options: ChannelOptions } {
  const host = address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const read = (file: string | undefined) => (file ? readFileSync(file) : null);
  const channelCredentials = credentials.createSsl(
    read(files.caFile),
    read(files.keyFile),
    read(files.certFile),
    {
      checkServerIdentity: (_name, certificate) => checkServerIdentity(host, certificate),
    },
  );
  return {
    credentials: channelCredentials,
    options: isIP(host) ? { 'grpc.ssl_target_name_override': NAME_FOR_AN_IP } : {},
  };
}
