/**
 * What a TLS client sees when the server answers in plaintext: OpenSSL reads the server's HTTP/2
 * frames as a TLS record and rejects its version ("wrong version number", OpenSSL 3), or its
 * length, for bytes that look like an SSLv2 header ("packet length too long").
 */
const SERVER_SPOKE_PLAINTEXT = /wrong version number|packet length too long/i;

/**
 * What a plaintext client sees when the server requires TLS: the server's TLS layer rejects the
 * HTTP/2 preface and closes the connection without a word, so grpc-js's session ends before the
 * server's settings with no error of its own ("Failed to connect", or "Connection closed before
 * starting HTTP/2 handshake" when the close comes first). A refused or unreachable address names
 * its errno instead (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT), and gets no hint.
 */
const SERVER_CLOSED_BEFORE_HTTP2 =
  /(?:^|Last error: )(?:Failed to connect|Connection closed before starting HTTP\/2 handshake) \(/;

/**
 * What a TLS client sees when the server does not accept its certificate (issued by another CA,
 * expired): Node's TLS server checks a client's certificate once the handshake is done and then
 * drops the connection without an alert, so grpc-js's session ends before the server's settings
 * ("Failed to connect", "Connection closed before starting HTTP/2 handshake") or a read is reset.
 */
const SERVER_DROPPED_TLS_CLIENT = new RegExp(
  `${SERVER_CLOSED_BEFORE_HTTP2.source}|Last error: (?:Error: )?read ECONNRESET`,
);

/**
 * What a TLS client sees when the server's certificate chain does not lead to a CA of its own
 * TLS_CA file: OpenSSL's words for a chain whose root, or issuer, it does not hold.
 */
const SERVER_OF_ANOTHER_CA =
  /self[- ]signed certificate in certificate chain|unable to get local issuer certificate|unable to verify the first certificate|(?:^|Error: )self[- ]signed certificate(?! in)/i;

/**
 * What a TLS client sees when the server's certificate is outside its validity by this host's clock:
 * OpenSSL's words. A certificate just issued on another machine is "not yet valid" to a host whose
 * clock is behind that machine's by more than the hour `npm run certs` backdates it.
 */
const SERVER_CERTIFICATE_NOT_YET_VALID = /certificate is not yet valid/i;
const SERVER_CERTIFICATE_EXPIRED = /certificate has expired/i;

/**
 * What a plaintext gRPC client sees when the address answers, but not in HTTP/2: Node's HTTP/2
 * session cannot read the server's first bytes ("Protocol error"). An HTTP/1.1 port does that, such
 * as a metrics port (the distributor's 9100 beside its 9000) or the gateway's REST port.
 */
const SERVER_NOT_HTTP2 = /(?:^|Last error: )Protocol error \(/;

/**
 * Said with the hint that a server may not speak TLS: a plain HTTP/1.1 port answers a TLS client
 * with the same OpenSSL error, so the address may simply be the wrong port, whatever TLS the
 * component behind it has.
 */
const OR_NOT_GRPC_PORT =
  'or this is not its gRPC port: a plain HTTP port, such as a metrics port (--metrics-port, the gRPC port + 100 by default), answers a TLS client the same way';

/**
 * Said with the hints of a certificate refused for its issuer: a certificate file without the
 * intermediate CA that issued the certificate fails the same way (its peers hold the root alone), and
 * the component starts with it, as it does with a certificate of another CA (split CAs).
 */
const ISSUED_BY_INTERMEDIATE =
  'a certificate of an intermediate CA needs the intermediate after it in its certificate file';

/** The settings that give a component its TLS files, as a hint names them. */
const TLS_SETTINGS = 'TLS_DIR (--tls-dir), or TLS_CA, TLS_CERT and TLS_KEY';

/**
 * A hint to append to a connection failure's message when its details look like one side speaking
 * TLS and the other not, the two sides' certificates coming from different CAs, or an address that
 * does not speak gRPC at all (a wrong port); '' otherwise. `ownTls` is whether this component dials with TLS: only the
 * mismatch it makes possible is hinted at, so a plaintext client never hears that the server may
 * not speak TLS. `peer` names the server ("the distributor", "goods").
 */
export function tlsMismatchHint(details: string | undefined, ownTls: boolean, peer: string): string {
  if (details === undefined) return '';
  if (ownTls && SERVER_SPOKE_PLAINTEXT.test(details)) {
    return ` — ${peer} may not speak TLS: this component has TLS files, so ${peer} needs its own too (${TLS_SETTINGS}); ${OR_NOT_GRPC_PORT}`;
  }
  if (!ownTls && SERVER_NOT_HTTP2.test(details)) {
    return ` — the address answered, but not in gRPC (HTTP/2): it is not ${peer}'s gRPC port (a metrics port, --metrics-port, or the gateway's REST port speaks HTTP/1.1)`;
  }
  if (!ownTls && SERVER_CLOSED_BEFORE_HTTP2.test(details)) {
    return ` — ${peer} may require TLS: this component has no TLS files (set ${TLS_SETTINGS})`;
  }
  if (ownTls && SERVER_CERTIFICATE_NOT_YET_VALID.test(details)) {
    return ` — ${peer}'s certificate starts later than this host's clock says it is now: if it was issued recently, this host's clock is behind the clock of the machine that issued it (set it right, NTP); else renew it with the right start`;
  }
  if (ownTls && SERVER_CERTIFICATE_EXPIRED.test(details)) {
    return ` — ${peer}'s certificate has expired by this host's clock: renew it, or, if this host's clock is ahead, set it right (NTP)`;
  }
  if (ownTls && SERVER_OF_ANOTHER_CA.test(details)) {
    return ` — ${peer}'s certificate is not issued by a CA in this component's CA file (TLS_CA, or ca.crt in TLS_DIR): give every host the same ca.crt, or, with split CAs, add the CA that issued it; ${ISSUED_BY_INTERMEDIATE}`;
  }
  if (ownTls && SERVER_DROPPED_TLS_CLIENT.test(details)) return clientCertificateRefusedHint(peer);
  return '';
}

/** The hint for a server that drops this component's connections once it has seen its certificate. */
export function clientCertificateRefusedHint(peer: string): string {
  return ` — ${peer} may not accept this component's certificate: it must be issued by the CA in ${peer}'s ca.crt and be valid by ${peer}'s clock, neither expired nor starting later (keep the hosts' clocks in step) (TLS_CERT, or <name>.crt in TLS_DIR; ${ISSUED_BY_INTERMEDIATE}); ${peer}'s log names the reason (untrusted-client-certificate)`;
}
