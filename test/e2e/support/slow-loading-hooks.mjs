// Module hooks for a test (see slow-loading.mjs): the first resolution of @grpc/grpc-js waits
// 1.5 s, after writing the file named by SLOW_LOADING_MARKER, so that a test knows the process is
// still loading its modules and has seconds to send it a signal then.
import { writeFileSync } from 'node:fs';

let slowed = false;

export async function resolve(specifier, context, nextResolve) {
  if (!slowed && specifier === '@grpc/grpc-js' && process.env.SLOW_LOADING_MARKER) {
    slowed = true;
    writeFileSync(process.env.SLOW_LOADING_MARKER, 'loading');
    await new Promise((done) => setTimeout(done, 1_500));
  }
  return nextResolve(specifier, context);
}
