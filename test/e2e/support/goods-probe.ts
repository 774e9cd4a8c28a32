// One ListGoods call, as a separate process, so that a test can make it from inside a network
// namespace (`ip netns exec <ns> node --import tsx test/e2e/support/goods-probe.ts ...`). Prints
// {"code":<grpc status>,"details":"...","names":[...]} as one line of JSON.
//
//   goods-probe.ts --address HOST:PORT --ca FILE [--cert FILE --key FILE] [--expected-name NAME]
//
// With --expected-name the server must carry that identity (secure naming); without it, the
// server's certificate must name the dialled host.
import { parseArgs } from 'node:util';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials, secureNamingChannelOptions } from '../../../src/common/tls.js';
import { GoodsServiceClient, type ListGoodsResponse } from '../../../src/gen/services.js';
import { hostCheckedTls } from '../../helpers/host-checked-tls.js';

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'expected-name': { type: 'string' },
  },
});
if (!values.address || !values.ca) throw new Error('goods-probe: --address and --ca are required');

const files = {
  caFile: values.ca,
  ...(values.cert && values.key ? { certFile: values.cert, keyFile: values.key } : {}),
};
const expectedName = values['expected-name'];
// As the components dial: secure naming. Otherwise as a generic client: the dialled host is checked.
const { credentials, options } = expectedName
  ? {
      credentials: channelCredentials(files, { expectedName }),
      options: secureNamingChannelOptions(files, expectedName),
    }
  : hostCheckedTls(values.address, files);
const client = new GoodsServiceClient(values.address, credentials, options);
client.listGoods(
  {},
  new Metadata(),
  { deadline: Date.now() + 5_000 },
  (error: ServiceError | null, response?: ListGoodsResponse) => {
    const outcome = error
      ? { code: error.code, details: error.details, names: [] }
      : { code: 0, details: '', names: (response?.results ?? []).map((goods) => goods.name) };
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
    client.close();
  },
);
