import { fileURLToPath } from 'node:url';
import { COMPONENT_NODE_FLAGS } from './node-flags.js';
import { type ComponentSpec, Supervisor } from './supervisor.js';

// `npm start`: the whole shop on one machine, each component its own process. Every component
// reads its own flags and environment variables (see the README), so they pass straight through.
const entry = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const component = (name: string, path: string): ComponentSpec => ({
  name,
  entry: entry(path),
  nodeFlags: COMPONENT_NODE_FLAGS,
});
const components: ComponentSpec[] = [
  component('distributor', '../distributor/main.js'),
  component('goods', '../services/goods/main.js'),
  component('members', '../services/members/main.js'),
  component('purchases', '../services/purchases/main.js'),
  component('gateway', '../gateway/main.js'),
];

const supervisor = new Supervisor(components, {
  write: (line) => process.stdout.write(`${line}\n`),
  pretty: process.env.LOG_FORMAT !== 'json',
});
supervisor.start();

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`[launcher] ${signal}: stopping every component\n`);
  supervisor.stop().then(() => {
    process.stdout.write('[launcher] all stopped\n');
    process.exit(0);
  });
};
process.on('SIGINT', stop);
process.on('SIGHUP', stop);
process.on('exit', () => supervisor.killAll());
process.on('SIGTERM', stop);
