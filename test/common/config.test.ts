import { describe, expect, it } from 'vitest';
import { ConfigError, parseFlags, parseHostPort, parsePort } from '../../src/common/config.js';
import { loadDistributorConfig } from '../../src/distributor/config.js';

describe('parseFlags', () => {
  it('reads the known flags as strings', () => {
    expect(parseFlags(['--port', '0', '--host=::1'], ['port', 'host', 'other'])).toEqual({
      port: '0',
      host: '::1',
    });
  });

  it.each([
    ['an unknown flag', ['--bogus', '1']],
    ['a flag without its value', ['--port']],
    ['a stray word', ['9000']],
  ])('refuses %s with a ConfigError', (_label, argv) => {
    expect(() => parseFlags(argv, ['port'])).toThrow(ConfigError);
  });
});

describe('parsePort and parseHostPort', () => {
  it('accept what they document and name the source of a bad value', () => {
    expect(parsePort('0', '--port')).toBe(0);
    expect(parseHostPort('[::1]:9000', 'DISTRIBUTOR_ADDRESS')).toEqual({ host: '::1', port: 9000 });
    expect(() => parsePort('65536', 'GOODS_PORT')).toThrow(
      'GOODS_PORT: expected a port from 0 to 65535, got "65536"',
    );
    expect(() => parseHostPort('localhost', '--distributor')).toThrow('--distributor: expected host:port');
    expect(() => parseHostPort('localhost:0', '--distributor')).toThrow('the port must not be 0');
  });
});

describe('loadDistributorConfig', () => {
  it('takes a flag over the environment over the default', () => {
    expect(loadDistributorConfig([], {})).toMatchObject({ host: '0.0.0.0', port: 9000 });
    expect(loadDistributorConfig([], { DISTRIBUTOR_PORT: '9100' }).port).toBe(9100);
    expect(loadDistributorConfig(['--port', '0'], { DISTRIBUTOR_PORT: '9100' }).port).toBe(0);
  });

  it('refuses a bad command line or value with a ConfigError', () => {
    expect(() => loadDistributorConfig(['--bogus'], {})).toThrow(ConfigError);
    expect(() => loadDistributorConfig([], { DISTRIBUTOR_PORT: 'abc' })).toThrow(
      'DISTRIBUTOR_PORT: expected a whole number of at least 0, got "abc"',
    );
  });
});
