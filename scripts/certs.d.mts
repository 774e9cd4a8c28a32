// Types of scripts/certs.mjs, for the tests that make throwaway PKIs with it.

/** A certificate and its private key, as PEM files. */
export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** The components of the shop, each of which gets a certificate by default. */
export declare const COMPONENTS: readonly string[];
export declare const OPERATOR: string;

/** How long before the moment it is made a certificate becomes valid (clock skew between hosts). */
export declare const NOT_BEFORE_MARGIN_MS: number;

/**
 * Makes a CA: `<dir>/<name>.crt` and `<dir>/<name>.key` (mode 0600); `name` defaults to "ca".
 * `pathLength` (default 0) is how many intermediate CAs may stand below it.
 */
export declare function createCa(
  dir: string,
  options?: { readonly name?: string; readonly commonName?: string; readonly pathLength?: number },
): CertificateFiles;

/** An intermediate CA: its certificate and key, and its chain (its certificate then those above it but the root). */
export interface IntermediateCaFiles extends CertificateFiles {
  readonly chainFile: string;
}

/**
 * Makes an intermediate CA signed by `issuer`: `<dir>/<name>.crt`, `<dir>/<name>.key` and
 * `<dir>/<name>-chain.crt`; valid `days` (default as a CA) from now, since `notBefore`.
 */
export declare function createIntermediateCa(
  issuer: CertificateFiles & { readonly chainFile?: string },
  dir: string,
  options: {
    readonly name: string;
    readonly commonName: string;
    readonly days?: number;
    readonly notBefore?: Date;
  },
): IntermediateCaFiles;

/**
 * Issues `<dir>/<name>.crt` and `<dir>/<name>.key` signed by `ca`, for server and client
 * authentication, with the URI SAN spiffe://shop/<identity> (default: `name`), the DNS SAN
 * localhost, the IP SAN 127.0.0.1 and `hosts`, valid for `days` (default 825) from now, and since
 * `notBefore` (default: NOT_BEFORE_MARGIN_MS ago; tests set it to make a certificate far into its life).
 * Issued by an intermediate CA, the certificate file holds the certificate then the CA's chain.
 */
export declare function issueCertificate(
  ca: CertificateFiles & { readonly chainFile?: string },
  dir: string,
  options: {
    readonly name: string;
    readonly identity?: string;
    readonly hosts?: readonly string[];
    readonly days?: number;
    readonly notBefore?: Date;
  },
): CertificateFiles;

/** Makes the development PKI in `dir`: the CA (kept if present, unless `newCa`) and one certificate per name. */
export declare function makeDevPki(
  dir: string,
  options?: {
    readonly names?: readonly string[];
    readonly hosts?: readonly string[];
    readonly hostsByName?: Readonly<Record<string, readonly string[]>>;
    readonly newCa?: boolean;
  },
): {
  ca: CertificateFiles & { created: boolean };
  certificates: Record<string, CertificateFiles>;
};

/**
 * Sorts hosts into the DNS names and IP addresses a certificate carries, as the components take
 * them (a name in lower case, without a trailing dot); throws for anything else.
 */
export declare function splitHosts(hosts: readonly string[]): { dns: string[]; ips: string[] };

/**
 * The config of `openssl ca` as the script signs with it, `extensions` appended after it (lines of
 * a section of the config's own, such as `[ext]` and its `basicConstraints = …`).
 */
export declare function opensslCaConfig(extensions?: readonly string[]): string;
