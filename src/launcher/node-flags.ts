/**
 * Node.js flags every component runs with. Under steady load V8 grows each young-generation
 * semi-space to 16 MiB, which keeps a busy process well above 100 MB resident; 2 MiB semi-spaces
 * hold them under it with no loss of throughput on this workload (measured with `npm run bench`).
 */
export const COMPONENT_NODE_FLAGS = ['--max-semi-space-size=2'];
