import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = realpathSync(fileURLToPath(new URL('../../', import.meta.url)));
// Built and packed in a copy of the project: a build in the checkout would rewrite dist/ under the
// test files that run built modules meanwhile.
const LEFT_OUT = new Set(['node_modules', 'dist', 'data', '.git', 'src/gen', 'bench-results', 'coverage']);

/** The relative modules a built file imports (`from './x.js'`, `import './x.js'`, `import('./x.js')`). */
function relativeImports(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/(?:from\s+|import\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    found.push(match[1]!);
  }
  return found;
}

/** The folders of the package a project gives protoc or buf as import paths (see the README). */
const PROTO_ROOTS = ['proto', 'third_party'];

/** The files a .proto file imports (`import "x.proto";`, `import public "x.proto";`). */
function protoImports(source: string): string[] {
  return [...source.matchAll(/^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm)].map((match) => match[1]!);
}

/** Every file of dist/ that `entry` needs at run time or for its types, entry included. */
async function closure(project: string, entry: string): Promise<Set<string>> {
  const needed = new Set<string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined && needed.size < 1_000; file = pending.pop()) {
    if (needed.has(file)) continue;
    needed.add(file);
    for (const specifier of relativeImports(await readFile(join(project, file), 'utf8'))) {
      const target = normalize(join(dirname(file), specifier));
      pending.push(file.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target);
    }
  }
  return needed;
}

describe('the package another project installs', () => {
  // A user installs grpc-shop/resolver from `npm pack`'s tarball (see the README); dist/ is in
  // .gitignore, which npm also reads when the package names no files: the tarball had no dist/.
  it('holds dist/resolver and every built module it imports, and builds them before packing', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'shop-package-'));
    try {
      cpSync(root, copy, { recursive: true, filter: (source) => !LEFT_OUT.has(relative(root, source)) });
      symlinkSync(realpathSync(join(root, 'node_modules')), join(copy, 'node_modules'));
      await run('npm', ['run', 'build'], { cwd: copy, maxBuffer: 16 * 1024 * 1024 });
      const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: copy,
        maxBuffer: 16 * 1024 * 1024,
      });
      const packed = new Set<string>(
        (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path),
      );
      const needed = new Set([
        ...(await closure(copy, 'dist/resolver/index.js')),
        ...(await closure(copy, 'dist/resolver/index.d.ts')),
      ]);
      expect(needed.size).toBeGreaterThan(10);
      expect([...needed].filter((file) => !packed.has(file))).toEqual([]);
      expect(packed.has('proto/services.proto')).toBe(true);
      // A project generates its client from the packed protos (see the README): each import must be
      // packed too, or be a well-known type that protoc and buf carry. services.proto imports
      // google/api/annotations.proto, which was not packed: the tarball's protos did not compile.
      const unresolved: string[] = [];
      for (const file of [...packed].filter((path) => path.endsWith('.proto'))) {
        for (const imported of protoImports(await readFile(join(copy, file), 'utf8'))) {
          if (imported.startsWith('google/protobuf/')) continue;
          if (!PROTO_ROOTS.some((protoRoot) => packed.has(`${protoRoot}/${imported}`))) {
            unresolved.push(`${file} imports ${imported}`);
          }
        }
      }
      expect(unresolved).toEqual([]);
      const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
      expect(manifest.scripts.prepack).toBe('npm run build');
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  }, 240_000);

  // The resolver registers with the grpc-js it imports, and a client asks the grpc-js it was made
  // with: as a dependency, npm gave grpc-shop a copy of its own beside a project's grpc-js 1.13, whose
  // clients then failed every call ("Failed to parse DNS address dns:distributor:///...").
  it('shares the grpc-js of the project that installs it (a peer dependency, never a copy of its own)', async () => {
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
    expect(manifest.peerDependencies['@grpc/grpc-js']).toMatch(/^\^1\.1[4-9]\./);
    expect(manifest.dependencies['@grpc/grpc-js']).toBeUndefined();
    expect(manifest.devDependencies['@grpc/grpc-js']).toBeUndefined();
  });
});
