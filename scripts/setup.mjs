// Makes a fresh clone runnable: installs dependencies when they are missing, then generates the
// protobuf code and compiles to dist/. Runs before `npm start`, the per-component scripts, and
// (install only) before `npm test` and `npm run lint`.
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
// `--install-only`: for scripts that need the dependencies but not dist/ (test, lint).
if (!process.argv.includes('--install-only')) run(['run', '--silent', 'build']);
