// Makes a fresh clone runnable: installs dependencies when they are missing, then generates the
// protobuf code and compiles to dist/. Runs before `npm start` and the per-component scripts.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

function run(args) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, args, { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync('node_modules/@grpc/grpc-js') || !existsSync('node_modules/.bin/buf')) {
  process.stderr.write('setup: installing dependencies (first run only)...\n');
  run([existsSync('package-lock.json') ? 'ci' : 'install', '--no-audit', '--no-fund']);
}
run(['run', '--silent', 'build']);
