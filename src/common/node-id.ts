import { formatHostPort } from './config.js';

/**
 * The id the distributor lists a node under: its name and the address others dial, "goods@10.0.0.2:9010",
 * an IPv6 host in brackets as every address the project writes ("goods@[fd00::2]:9010"; bare, the
 * port would read as a part of the address). The same instance has the same id after a restart.
 */
export function nodeIdOf(node: {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}): string {
  return `${node.name}@${formatHostPort(node)}`;
}
