// Runs README grpcurl command lines through the test's reflection client (test/helpers/grpcurl.ts),
// as a separate process, so that a test can run them from inside a network namespace
// (`ip netns exec <ns> node --import tsx test/e2e/support/grpcurl-probe.ts 'grpcurl ...' ...`).
// Prints one JSON array: per command line {"status":"OK"|<gRPC status name>|"ERROR","output":...}.
import { grpcurl } from '../../helpers/grpcurl.js';

const outcomes = [];
for (const commandLine of process.argv.slice(2)) {
  outcomes.push(
    await grpcurl(commandLine).catch((error: Error) => ({ status: 'ERROR', output: error.message })),
  );
}
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
