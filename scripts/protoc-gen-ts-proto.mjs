// The ts-proto plugin as `buf generate` runs it (see buf.gen.yaml). On a fresh clone, where a
// globally installed buf runs before any `npm install`, ts-proto is not there yet: this entry
// installs the project's dependencies first (npm ci from the lock file), then hands the request to
// the real plugin. Its stdout carries the plugin protocol, so npm's output goes to stderr, and a
// failure is one clear line rather than a stack trace.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const plugin = join(root, 'node_modules', 'ts-proto', 'protoc-gen-ts_proto');

function fail(message) {
  process.stderr.write(`protoc-gen-ts-proto: ${message}\n`);
  process.exit(1);
}

if (!existsSync(plugin)) {
  process.stderr.write('protoc-gen-ts-proto: ts-proto is not installed yet; running npm ci first...\n');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const lock = existsSync(join(root, 'package-lock.json'));
  const install = spawnSync(npm, [lock ? 'ci' : 'install', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: ['ignore', process.stderr, process.stderr],
  });
  if (install.error)
    fail(`could not run npm (${install.error.message}); install Node.js and npm, then run npm ci`);
  if (install.status !== 0 || !existsSync(plugin))
    fail(`npm ci failed (exit ${install.status}); run it by hand to see why`);
}

const result = spawnSync(process.execPath, [plugin], {
  input: readFileSync(0),
  stdio: ['pipe', 'pipe', 'inherit'],
  maxBuffer: 1024 * 1024 * 1024,
});
if (result.error) fail(`could not run ts-proto: ${result.error.message}`);
// Not process.exit(): buf's pipe may take the answer in parts, and exiting would cut it short.
process.exitCode = result.status ?? 1;
process.stdout.write(result.stdout);
